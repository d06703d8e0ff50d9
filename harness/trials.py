"""The functions Ray Tune runs: one strategy × seed cell, and one point of a grid/Optuna search.

A cell runs the strategy's own search (or loads the result of its Ray Tune search), checkpoints
it, then scores the weights with the shared protocol and reports one results row. A retry after
a failure resumes from the checkpoint, so a finished search is never run twice; TapWeight also
continues from its own checkpoint inside the trial directory.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.faults import maybe_fail
from harness.rundir import RunDirectory, trial_key
from harness.spec import TUNE_NATIVE, ExperimentSpec
from tapweight.errors import TrainingError
from tapweight.result import TrajectoryPoint, WeightingResult

__all__ = [
    "Cell",
    "build_parts",
    "cells_of",
    "conclude_run",
    "run_cell",
    "run_search_point",
    "score_cell",
    "search_weights",
    "versions",
]

_STATE_FILE = "cell_state.json"


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
        for dataset in spec.datasets
        for entry in spec.strategies
        for seed in spec.seeds
    ]


def conclude_run(
    run_dir: RunDirectory, cells: list[Cell], unfinished: str, hint: str
) -> RunDirectory:
    """Fail the run naming the cells without a row; else write the report and mark it finished."""
    from harness.report import write_report

    done = {row["trial"] for row in run_dir.rows()}
    missing = [cell.key for cell in cells if cell.key not in done]
    if missing:
        message = f"{len(missing)} trial(s) {unfinished}: {', '.join(missing)}"
        run_dir.mark_failed(len(cells), message)
        raise TrainingError(f"{message}; {hint}")
    write_report(run_dir)
    run_dir.set_status("finished", len(cells))
    run_dir.event("experiment_finished", report="report/report.md")
    return run_dir


def build_parts(spec: ExperimentSpec, dataset: str, seed: int):
    """Components for one dataset and seed; the seed fixes the random starting encoder, so every
    strategy of a seed starts from the same weights."""
    import torch

    from tapweight.components import build_components

    torch.manual_seed(seed)
    return build_components(
        dataset,
        spec.encoder,
        spec.objectives,
        spec.corpus,
        os.environ.get("TAPWEIGHT_DATA_DIR"),
        split=spec.split,
        seed=seed,
        max_corpus=spec.max_corpus,
        encoder_options=spec.encoder_options,
    )


def trial_device() -> str:
    """``cuda`` when Ray gave this trial a GPU, else ``cpu`` (the protocol's device follows)."""
    import ray

    return "cuda" if ray.get_gpu_ids() else "cpu"


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
        "tapweight": tapweight.__version__,
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


def _budget(spec: ExperimentSpec, label: str, device: str):
    budget = spec.budget_for(spec.strategy(label))
    return budget.model_copy(
        update={
            "pretrain": budget.pretrain.model_copy(update={"device": device}),
            "finetune": budget.finetune.model_copy(update={"device": device}),
        }
    )


def _report(metrics: dict[str, Any], state: dict | None = None) -> None:
    from ray import tune

    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, _STATE_FILE).write_text(json.dumps(state))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _load_state() -> dict:
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        return json.loads(Path(folder, _STATE_FILE).read_text())


def search_weights(
    spec: ExperimentSpec, cell: Cell, parts, run_dir: RunDirectory, device: str,
    on_point: Callable[[dict[str, Any]], None], tune_searched: bool = True,
) -> WeightingResult:  # fmt: skip
    """The strategy's own search. With ``tune_searched``, grid and Optuna were searched by Ray
    Tune beforehand and their result is read; without, they search in this process."""
    from baselines import make_strategy
    from harness.protocol import search_seed

    entry = spec.strategy(cell.strategy)
    if tune_searched and entry.name in TUNE_NATIVE:
        return WeightingResult.load(run_dir.search_dir(cell.dataset, cell.strategy, cell.seed))
    settings = dict(entry.settings)
    if entry.name == "tapweight":
        settings["checkpoint_dir"] = str(run_dir.trial_dir(cell.key) / "tapweight")
    strategy = make_strategy(entry.name, seed=search_seed(cell.seed), **settings)
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

    return strategy.run(parts, _budget(spec, cell.strategy, device), callback=progress)


def score_cell(
    spec: ExperimentSpec, cell: Cell, parts, result: WeightingResult, search_s: float,
    device: str,
) -> dict[str, Any]:  # fmt: skip
    """Score a strategy's weights with the shared protocol: the cell's results row."""
    from harness.protocol import retrain

    budget = _budget(spec, cell.strategy, device)
    scores = retrain(
        parts, result, budget.pretrain, budget.finetune, cell.seed, spec.protocol.finetune_seeds
    )
    seconds = search_s + scores.seconds
    units = spec.resources.gpu if device == "cuda" else spec.resources.cpu
    units = 1.0 if units == "auto" else float(units)
    passes = dict(result.cost.passes)
    passes["protocol_pretrain"] = scores.pretrain_passes
    passes["protocol_finetune"] = scores.finetune_passes
    return {
        "trial": cell.key,
        "spec_hash": spec.spec_hash(),
        "experiment": spec.name,
        "dataset": cell.dataset,
        "strategy": cell.strategy,
        "seed": cell.seed,
        "objective_names": result.objective_names,
        "weights": result.weights,
        "task_weight": result.task_weight,
        "continued_pretraining": result.continued_pretraining,
        "retrained": scores.summary(),
        "native": result.native_scores,
        "cost": {
            "wall_clock_s": seconds,
            "search_s": search_s,
            "protocol_s": scores.seconds,
            "device_seconds": seconds * units,
            "device": device,
            "passes": passes,
            "search_passes": result.cost.total_passes,
            "pretrain_steps": result.cost.pretrain_steps,
            "unspent_pretrain_steps": result.cost.unspent_pretrain_steps,
            "unspent_reason": result.cost.unspent_reason,
            "full_trainings": result.cost.full_trainings + int(result.continued_pretraining),
        },
        "trajectory": [p.model_dump(mode="json") for p in result.trajectory],
        "settings": result.settings,
        "versions": versions(),
        "ran_on": ran_on(),
    }


def run_cell(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for one (dataset, strategy, seed) cell."""
    import torch

    spec = ExperimentSpec.model_validate(config["spec"])
    cell = Cell(**config["cell"])
    run_dir = RunDirectory(config["run_dir"])
    state = _load_state()
    # Finished before an interruption saved Tune's state: replay the row, never train again.
    row = state.get("row") or next((r for r in run_dir.rows() if r["trial"] == cell.key), None)
    if row is not None:
        run_dir.log_attempt(cell.key, "replayed finished result")
        _report({"phase": "done", "row": json.dumps(row)})
        return
    run_dir.log_attempt(cell.key, "resumed after search" if state else "started")
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    began = time.perf_counter()
    device = trial_device()
    parts = build_parts(spec, cell.dataset, cell.seed)
    loading_s = time.perf_counter() - began
    if not state:
        result = search_weights(spec, cell, parts, run_dir, device, _report)
        state = {  # the strategy's own clock; for grid/Optuna the sum of their Tune trials
            "result": result.model_dump(mode="json"),
            "search_s": loading_s + result.cost.wall_clock_s,
        }
        _report({"phase": "searched", "weights": result.weights}, state)
    maybe_fail(cell.key, run_dir)
    result = WeightingResult.model_validate(state["result"])
    row = score_cell(spec, cell, parts, result, state["search_s"], device)
    _report({"phase": "done", "row": json.dumps(row)}, {**state, "row": row})


def run_search_point(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for one weight vector of a grid or Optuna search.

    Validation only; reports the score after every finetuning epoch so ASHA can stop it early.
    """
    import torch

    from baselines.optuna_tpe import weights_from_params
    from baselines.trial import train_with_weights
    from tapweight.budget import counting_pretrain_steps

    spec = ExperimentSpec.model_validate(config["spec"])
    dataset, label, seed = config["dataset"], config["strategy"], config["seed"]
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    if "weights" in config:
        weights = list(config["weights"])
    else:
        weights = weights_from_params({k: v for k, v in config.items() if k.startswith("u")})
    parts = build_parts(spec, dataset, seed)
    metric = parts.task.metric
    budget = _budget(spec, label, trial_device())
    began = time.perf_counter()

    def on_epoch(record: dict[str, float]) -> None:
        last = int(record["epoch"]) == budget.finetune.epochs
        if not last:
            _report({"valid": record[f"valid_{metric}"], "epoch": int(record["epoch"])})

    with counting_pretrain_steps() as counted:
        trial = train_with_weights(parts, weights, budget, config["search_seed"], on_epoch)
    _report(
        {
            "valid": trial.valid_score,
            "epoch": budget.finetune.epochs,
            "weights": weights,
            "passes": trial.passes,
            "pretrain_steps": counted.steps,
            "seconds": time.perf_counter() - began,
            "complete": True,
        }
    )
