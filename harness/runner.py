"""Run an experiment on Ray Tune: the searches of trial-search strategies first (each proposal
a Tune trial, proposed and stopped by the strategy's own searcher, in a reused worker), then one
trial per dataset × strategy × seed.

Every stage is a Tune experiment under ``<run dir>/tune``; a stage already complete is skipped
and an interrupted one is restored with ``Tuner.restore``, so ``resume`` never redoes a finished
trial. ``ray.init()`` is local unless an address is given (or ``RAY_ADDRESS`` is set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ray import tune

from baselines import TrialSearch, make_strategy, strategy_class
from harness.cells import Cell, DataDir, cells_of, conclude_run, running_cells
from harness.loopback import is_loopback_address, keep_ray_on_loopback
from harness.progress import TrialProgress
from harness.protocol import search_seed
from harness.row import ResultRow
from harness.rundir import RunDirectory, trial_key
from harness.spec import ExperimentSpec, StrategySpec
from harness.trainables import ROW, run_cell, run_search_trial
from harness.tune_search import StrategyEarlyStopping, StrategySearcher, search_outcome
from tapweight.errors import ConfigError
from tapweight.result import Cost

__all__ = ["run_experiment", "resume_experiment"]

log = logging.getLogger(__name__)
_FORWARDED_ENV = ("TAPWEIGHT_", "HF_")
_JOB_ENV_MARKER = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray's job supervisor for the driver of a submitted job."""


def run_experiment(
    spec: ExperimentSpec, out_dir: str | os.PathLike[str], address: str | None = None,
    progress: bool = True, data_dir: DataDir = None,
) -> RunDirectory:  # fmt: skip
    """Start ``spec`` in a new run directory and run it to the end (then write the report)."""
    run_dir = RunDirectory(out_dir)
    run_dir.create(spec)
    return _execute(spec, run_dir, address, progress, False, data_dir)


def resume_experiment(
    out_dir: str | os.PathLike[str], address: str | None = None, progress: bool = True,
    data_dir: DataDir = None,
) -> RunDirectory:  # fmt: skip
    """Continue an interrupted run from its checkpoints; finished trials are not run again."""
    run_dir = RunDirectory(out_dir)
    spec = run_dir.load_spec()
    if (status := run_dir.status()) is not None and status.state == "finished":
        raise ConfigError(f"{run_dir.path} is already finished; `tapweight report` redraws it")
    return _execute(spec, run_dir, address, progress, True, data_dir)


def _execute(
    spec: ExperimentSpec, run_dir: RunDirectory, address: str | None, progress: bool,
    resumed: bool, data_dir: DataDir,
) -> RunDirectory:  # fmt: skip
    data = None if data_dir is None else str(Path(data_dir).resolve())
    with running_cells(spec, run_dir, resumed, progress) as (todo, bar), _ray(address):
        resources = _trial_resources(spec)
        for dataset in spec.dataset_names:
            for entry in spec.strategies:
                if issubclass(strategy_class(entry.name), TrialSearch):
                    for seed in spec.seeds:
                        stage = _SearchStage(spec, run_dir, dataset, entry, seed, data)
                        stage.run(resources, bar)
        if todo:
            _cell_stage(spec, run_dir, resources, bar, data)
    return conclude_run(
        run_dir,
        "did not finish (failed after all retries, or stopped by budget_wall_clock_s)",
        f"see {run_dir.tune_dir} and `tapweight resume`",
    )


@contextmanager
def _ray(address: str | None) -> Iterator[None]:
    """Join ``address`` (or ``RAY_ADDRESS``), else start Ray locally on loopback."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    pinned = not address or is_loopback_address(address)
    if pinned:
        keep_ray_on_loopback()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our own progress display, not Tune's
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        # Workers of a local Ray inherit this process's environment, and a Ray job's driver
        # already passes the job's; only a plain client of a cluster must forward ours.
        if _JOB_ENV_MARKER not in os.environ:
            env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}
            options["runtime_env"] = {"env_vars": env}
        ray.init(address=address, **options)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **options)
    try:
        node_ip = ray.util.get_node_ip_address()
        if pinned and not is_loopback_address(node_ip):
            raise ConfigError(f"Ray runs this driver on {node_ip}, not on loopback as asked")
        yield
    finally:
        ray.shutdown()


def _trial_resources(spec: ExperimentSpec) -> dict[str, float]:
    """Resources per trial, refused up front when no node could ever hold one (no hanging)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    gpu = spec.resources.gpu
    gpu = (1.0 if most_gpu >= 1 else 0.0) if gpu == "auto" else float(gpu)
    if spec.resources.cpu > most_cpu:
        raise ConfigError(
            f"resources.cpu: each trial asks for {spec.resources.cpu} CPUs but the largest node "
            f"of the cluster has {most_cpu:g}"
        )
    if gpu > most_gpu:
        raise ConfigError(
            f"resources.gpu: each trial asks for {gpu:g} GPU(s) but "
            + (f"the largest node has {most_gpu:g}" if most_gpu else "the cluster has no GPU")
            + "; use gpu: auto to fall back to CPU workers"
        )
    return {"cpu": spec.resources.cpu, "gpu": gpu}


def _tuner(trainable, resources, path: Path, param_space, tune_config, run_config):
    """A new Tuner, or the interrupted one at ``path`` restored (finished trials kept)."""
    trainable = tune.with_resources(trainable, resources)
    if tune.Tuner.can_restore(str(path)):
        return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    return tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
    )


def _run_config(spec: ExperimentSpec, run_dir: RunDirectory, name: str, callbacks, stop=None):
    return tune.RunConfig(
        name=name,
        storage_path=str(run_dir.tune_dir),
        failure_config=tune.FailureConfig(max_failures=spec.tune.max_failures),
        callbacks=callbacks,
        stop=stop,
        verbose=0,
    )


def _cell_stage(
    spec: ExperimentSpec, run_dir: RunDirectory, resources: dict[str, float], bar: TrialProgress,
    data_dir: str | None,
) -> None:  # fmt: skip
    """Every cell as one Tune trial (the whole grid, so a restored experiment is the same one;
    finished cells replay their rows)."""
    param_space = {
        "spec": spec.model_dump(mode="json"),
        "run_dir": str(run_dir.path),
        "data_dir": data_dir,
        "cell": tune.grid_search([asdict(cell) for cell in cells_of(spec)]),
    }
    cap = spec.budget_wall_clock_s
    tuner = _tuner(
        run_cell,
        resources,
        run_dir.tune_dir / "cells",
        param_space,
        tune.TuneConfig(max_concurrent_trials=spec.tune.max_concurrent_trials),
        _run_config(
            spec, run_dir, "cells", [CellEvents(run_dir)], {"time_total_s": cap} if cap else None
        ),
    )
    bar.attach(run_dir)
    results = tuner.fit()
    for result in results:  # rows of trials that finished just before an interruption
        if result.metrics and ROW in result.metrics:
            run_dir.add_row(ResultRow.model_validate_json(result.metrics[ROW]))


@dataclass(frozen=True)
class _SearchStage:
    """The trials of one (dataset, strategy, seed) trial search, as Ray Tune trials proposed
    and stopped early by the strategy's own searcher."""

    spec: ExperimentSpec
    run_dir: RunDirectory
    dataset: str
    entry: StrategySpec
    seed: int
    data_dir: str | None

    def run(self, resources: dict[str, float], bar: TrialProgress) -> None:
        from tapweight.data.registry import get_dataset_info
        from tapweight.downstream.metrics import HIGHER_IS_BETTER

        spec, entry, seed = self.spec, self.entry, self.seed
        out = self.run_dir.search_dir(self.dataset, entry.label, seed)
        if (out / "result.json").is_file():
            return
        strategy = make_strategy(entry.name, seed=search_seed(seed), **entry.settings)
        assert isinstance(strategy, TrialSearch)
        metric = get_dataset_info(self.dataset).metric
        searcher = StrategySearcher(
            strategy.searcher(len(spec.objectives), metric),
            "max" if HIGHER_IS_BETTER[metric] else "min",
        )
        space: dict[str, Any] = {
            "spec": spec.model_dump(mode="json"), "dataset": self.dataset, "strategy": entry.label,
            "seed": seed, "search_seed": strategy.seed, "data_dir": self.data_dir,
        }  # fmt: skip
        name = "search-" + out.name
        bar.stage(f"{entry.label} search on {self.dataset}, seed {seed}")
        tuner = _tuner(
            run_search_trial,
            resources,
            self.run_dir.tune_dir / name,
            space,
            tune.TuneConfig(
                search_alg=searcher,
                scheduler=StrategyEarlyStopping(searcher),
                num_samples=strategy.planned_trials(len(spec.objectives)),
                max_concurrent_trials=spec.tune.max_concurrent_trials,
                # A search's proposals are many short trainings of one strategy: a new worker
                # per proposal (start, imports) cost more than the training itself. The local
                # runner runs them all in one process with the same rows, so nothing is kept
                # between trials that would change one.
                reuse_actors=True,
            ),
            _run_config(spec, self.run_dir, name, []),
        )
        results = tuner.fit()
        ran = [r for r in results if r.metrics]
        cost = Cost(
            wall_clock_s=sum(r.metrics.get("time_total_s", 0.0) for r in ran),
            device="ray",
            passes={"pretrain": sum(r.metrics.get("passes", 0) for r in ran)},
            full_trainings=len(ran),
        )
        budget = spec.budget_for(entry)
        result = strategy.conclude(list(spec.objectives), metric, search_outcome(results), cost)
        result = result.with_budget(
            sum(r.metrics.get("pretrain_steps", 0) for r in ran),
            budget.total_pretrain_steps,
            strategy.budget_use(len(spec.objectives), budget).unspent_reason,
        )
        result.save(out)
        self.run_dir.event(
            "progress", trial=trial_key(self.dataset, entry.label, seed), phase="searched",
            step=len(result.trajectory), weights=result.weights, metrics=result.native_scores,
        )  # fmt: skip


class CellEvents(tune.Callback):
    """Tune callback (driver side): trial progress and rows into the run directory's files.

    Holds only the directory's path, so Tune can pickle it with the experiment for restores."""

    def __init__(self, run_dir: RunDirectory) -> None:
        self.path = str(run_dir.path)

    def _event(self, trial, kind, **fields) -> None:
        RunDirectory(self.path).event(kind, trial=Cell(**trial.config["cell"]).key, **fields)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._event(trial, "trial_started")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("phase") in ("search", "searched"):
            fields = {k: result[k] for k in ("step", "weights", "metrics") if k in result}
            self._event(trial, "progress", phase=result["phase"], **fields)

    def on_trial_complete(self, iteration, trials, trial, **info):
        row = (trial.last_result or {}).get(ROW)
        if row is None:
            return
        parsed = ResultRow.model_validate_json(row)
        if RunDirectory(self.path).add_row(parsed):
            self._event(trial, "trial_result", row=parsed.model_dump(mode="json"))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._event(trial, "trial_retry", error=_error_text(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._event(trial, "trial_error", error=_error_text(trial))


def _error_text(trial) -> str:
    """The last line of the trial's error (the exception message), not the traceback."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        return lines[-1] if lines else ""
    return ""
