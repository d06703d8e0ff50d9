"""The cells of an experiment (dataset × strategy × seed) and what every runner does with one.

A cell builds its components, runs its strategy's own search, scores the weights with the shared
protocol and yields one :class:`~harness.row.ResultRow`. The Ray Tune runner
(:mod:`harness.runner`) and the local runner (:mod:`harness.local`) differ only in where cells
run; both start, track and conclude a run through :func:`running_cells` and
:func:`conclude_run`.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from baselines import Budget, Strategy, make_strategy, strategy_class
from harness.artifact import ArtifactInfo
from harness.progress import TrialProgress
from harness.protocol import retrain, search_seed
from harness.row import ResultRow, RowCost
from harness.rundir import RunDirectory, artifact_id, trial_key
from harness.spec import ExperimentSpec
from tapweight.components import Components
from tapweight.errors import TapWeightError, TrainingError
from tapweight.result import TrajectoryPoint, WeightingResult

__all__ = [
    "Cell",
    "DataDir",
    "build_parts",
    "cell_budget",
    "cell_strategy",
    "cells_of",
    "conclude_run",
    "running_cells",
    "score_cell",
    "search_weights",
]

DataDir = str | os.PathLike[str] | None
"""The shared data folder trials read datasets from (None: the loaders' own default)."""


@dataclass(frozen=True)
class Cell:
    dataset: str
    strategy: str
    """The strategy's label in the spec (name plus settings)."""
    seed: int

    @property
    def key(self) -> str:
        return trial_key(self.dataset, self.strategy, self.seed)


def cells_of(spec: ExperimentSpec) -> list[Cell]:
    """Every dataset × strategy × seed of the spec, in the order they are run."""
    return [
        Cell(dataset, entry.label, seed)
        for dataset in spec.dataset_names
        for entry in spec.strategies
        for seed in spec.seeds
    ]


@contextmanager
def running_cells(
    spec: ExperimentSpec, run_dir: RunDirectory, resumed: bool, progress: bool
) -> Iterator[tuple[list[Cell], TrialProgress]]:
    """Mark the run started and show its progress; yields the cells that have no row yet. An
    error (an interrupt too) marks the run failed, so it stays resumable."""
    cells = cells_of(spec)
    try:
        run_dir.event("experiment_started", trials=len(cells), resumed=resumed, spec=spec.name)
        run_dir.set_status("running", len(cells))
        done = {row.trial for row in run_dir.rows()}
        todo = [cell for cell in cells if cell.key not in done]
        with TrialProgress(len(cells), len(done), enabled=progress) as bar:
            yield todo, bar
    except BaseException as error:
        run_dir.mark_failed(
            len(cells), str(error) if isinstance(error, TapWeightError) else repr(error)
        )
        raise


def conclude_run(run_dir: RunDirectory, unfinished: str, hint: str) -> RunDirectory:
    """Fail the run naming the cells without a row; else write the report and mark it finished."""
    from harness.report import write_report

    cells = cells_of(run_dir.load_spec())
    done = {row.trial for row in run_dir.rows()}
    missing = [cell.key for cell in cells if cell.key not in done]
    if missing:
        message = f"{len(missing)} trial(s) {unfinished}: {', '.join(missing)}"
        run_dir.mark_failed(len(cells), message)
        raise TrainingError(f"{message}; {hint}")
    write_report(run_dir)
    run_dir.set_status("finished", len(cells))
    run_dir.event("experiment_finished", report="report/report.md")
    return run_dir


def build_parts(spec: ExperimentSpec, dataset: str, seed: int, data_dir: DataDir) -> Components:
    """Components for one dataset and seed; the seed fixes the random starting encoder, so every
    strategy of a seed starts from the same weights."""
    import torch

    from tapweight.components import build_components

    torch.manual_seed(seed)
    return build_components(
        spec.dataset_entry(dataset),
        spec.encoder,
        spec.objectives,
        spec.corpus,
        data_dir,
        split=spec.split,
        seed=seed,
        max_corpus=spec.max_corpus,
        encoder_options=spec.encoder_options,
    )


def cell_budget(spec: ExperimentSpec, label: str, device: str) -> Budget:
    """The budget of one strategy of the spec, on the device its trial runs on."""
    budget = spec.budget_for(spec.strategy(label))
    return budget.model_copy(
        update={
            "pretrain": budget.pretrain.model_copy(update={"device": device}),
            "finetune": budget.finetune.model_copy(update={"device": device}),
        }
    )


def cell_strategy(spec: ExperimentSpec, cell: Cell, run_dir: RunDirectory) -> Strategy:
    """The cell's strategy with its search seed; one that can resume checkpoints in the
    trial's directory."""
    entry = spec.strategy(cell.strategy)
    settings = dict(entry.settings)
    if strategy_class(entry.name).resumable:
        settings["checkpoint_dir"] = str(run_dir.trial_dir(cell.key) / "checkpoint")
    return make_strategy(entry.name, seed=search_seed(cell.seed), **settings)


def search_weights(
    spec: ExperimentSpec, cell: Cell, strategy: Strategy, parts: Components, device: str,
    on_point: Callable[[dict[str, Any]], None],
) -> WeightingResult:  # fmt: skip
    """The strategy's own search in this process, its trajectory points sent to ``on_point``."""
    began = time.perf_counter()

    def progress(point: TrajectoryPoint) -> None:
        on_point(
            {
                "phase": "search",
                "step": point.step,
                "weights": point.weights,
                "metrics": point.metrics,
                "elapsed_s": time.perf_counter() - began,
            }
        )

    return strategy.run(parts, cell_budget(spec, cell.strategy, device), callback=progress)


def score_cell(
    spec: ExperimentSpec, cell: Cell, parts: Components, result: WeightingResult,
    search_s: float, device: str, run_dir: RunDirectory | None = None,
) -> ResultRow:  # fmt: skip
    """Score a strategy's weights with the shared protocol: the cell's results row. With
    ``run_dir``, the protocol's continued-pretrained encoder and the weights are kept there as
    the trial's artifact."""
    budget = cell_budget(spec, cell.strategy, device)
    runs = retrain(
        parts, result, budget.pretrain, budget.finetune, cell.seed, spec.protocol.finetune_seeds
    )
    if run_dir is not None:
        scores = runs.scores()
        info = ArtifactInfo(
            id=artifact_id(cell.key),
            trial=cell.key,
            dataset=cell.dataset,
            strategy=cell.strategy,
            seed=cell.seed,
            domain=parts.domain,
            objective_names=result.objective_names,
            weights=result.weights,
            continued_pretraining=result.continued_pretraining,
            metric=scores.metric,
            valid_mean=scores.valid_mean,
            test_mean=scores.test_mean,
        )
        run_dir.write_artifact(info, runs.encoder, parts.tokenizer)
    seconds = search_s + runs.seconds
    units = spec.resources.gpu if device == "cuda" else spec.resources.cpu
    units = 1.0 if units == "auto" else float(units)
    passes = dict(result.cost.passes)
    passes["protocol_pretrain"] = runs.pretrain_passes
    passes["protocol_finetune"] = runs.finetune_passes
    return ResultRow(
        trial=cell.key,
        spec_hash=spec.spec_hash(),
        experiment=spec.name,
        dataset=cell.dataset,
        strategy=cell.strategy,
        seed=cell.seed,
        objective_names=result.objective_names,
        weights=result.weights,
        task_weight=result.task_weight,
        continued_pretraining=result.continued_pretraining,
        retrained=runs.scores(),
        native=result.native_scores,
        cost=RowCost(
            wall_clock_s=seconds,
            search_s=search_s,
            protocol_s=runs.seconds,
            device_seconds=seconds * units,
            device=device,
            passes=passes,
            search_passes=result.cost.total_passes,
            pretrain_steps=result.cost.pretrain_steps,
            unspent_pretrain_steps=result.cost.unspent_pretrain_steps,
            unspent_reason=result.cost.unspent_reason,
            full_trainings=result.cost.full_trainings + int(result.continued_pretraining),
        ),
        trajectory=result.trajectory,
        settings=result.settings,
        versions=versions(),
        ran_on=ran_on(),
    )


def _ray_running() -> ModuleType | None:
    """The Ray module when this process is part of a running Ray session (a Tune trial), else
    None; merely imported Ray (a local run inside a process that used Ray before) is not."""
    ray = sys.modules.get("ray")
    return ray if ray is not None and ray.is_initialized() else None


def versions() -> dict[str, str]:
    """Versions that produced a row (Ray's only where it ran the trial)."""
    import torch

    import tapweight

    found = {
        tapweight.__name__: tapweight.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if ray := _ray_running():
        found["ray"] = ray.__version__
    return found


def ran_on() -> dict[str, str]:
    """Where a row was produced: the host, and the Ray node where Ray ran the trial."""
    where = {"host": platform.node()}
    if ray := _ray_running():
        where["ray_node"] = ray.get_runtime_context().get_node_id()
    return where
