"""Run an experiment on this machine without Ray: trials one after another, or in a few worker
processes.

For a single machine where Ray is not installed or not wanted (one workstation GPU, a debugging
session): the same cells, shared protocol, run directory, rows and report as the Ray Tune runner,
but no retries; trial searches (grid, Optuna) run their trials in-process, one after another,
with the same proposals and early stopping as on Ray. Workers share the GPU, if any, and
write to the run directory under its file lock. Resuming skips every cell that already has a row;
an interrupted cell starts again (TapWeight from its own checkpoint).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from harness.cells import (
    Cell,
    DataDir,
    build_parts,
    cell_strategy,
    conclude_run,
    running_cells,
    score_cell,
    search_weights,
)
from harness.rundir import RunDirectory
from harness.spec import ExperimentSpec
from tapweight.errors import ConfigError, TapWeightError

__all__ = ["run_local", "resume_local", "local_device"]


def local_device(spec: ExperimentSpec) -> str:
    """``cuda`` when the spec asks for a GPU (or ``auto``) and torch sees one, else ``cpu``."""
    import torch

    wants = spec.resources.gpu == "auto" or float(spec.resources.gpu) > 0
    if wants and torch.cuda.is_available():
        return "cuda"
    if spec.resources.gpu not in ("auto", 0, 0.0):
        raise ConfigError(
            f"resources.gpu: the spec asks for {spec.resources.gpu} GPU(s) but torch sees none; "
            "use gpu: auto to fall back to the CPU"
        )
    return "cpu"


def run_local(
    spec: ExperimentSpec, out_dir: str | os.PathLike[str], progress: bool = True,
    workers: int = 1, data_dir: DataDir = None,
) -> RunDirectory:  # fmt: skip
    """Start ``spec`` in a new run directory and run its trials here, ``workers`` at a time."""
    _check_workers(workers)
    run_dir = RunDirectory(out_dir)
    run_dir.create(spec)
    return _execute(spec, run_dir, progress, False, workers, data_dir)


def resume_local(
    out_dir: str | os.PathLike[str], progress: bool = True, workers: int = 1,
    data_dir: DataDir = None,
) -> RunDirectory:  # fmt: skip
    """Run the cells of an interrupted run that have no row yet."""
    _check_workers(workers)
    run_dir = RunDirectory(out_dir)
    spec = run_dir.load_spec()
    if (status := run_dir.status()) is not None and status.state == "finished":
        raise ConfigError(f"{run_dir.path} is already finished; `tapweight report` redraws it")
    return _execute(spec, run_dir, progress, True, workers, data_dir)


def _check_workers(workers: int) -> None:
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")


def _execute(
    spec: ExperimentSpec, run_dir: RunDirectory, progress: bool, resumed: bool, workers: int,
    data_dir: DataDir,
) -> RunDirectory:  # fmt: skip
    with running_cells(spec, run_dir, resumed, progress) as (todo, bar):
        device = local_device(spec)
        threads = max(1, int(spec.resources.cpu))
        bar.attach(run_dir)
        task = _CellTask(spec, run_dir, device, data_dir)
        if workers == 1 or len(todo) < 2:
            _set_threads(threads)
            for cell in todo:
                task(cell)
        else:
            _run_in_workers(task, todo, workers, threads)
    return conclude_run(
        run_dir, "failed", f"see {run_dir.events_file} and `tapweight resume --local`"
    )


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@dataclass(frozen=True)
class _CellTask:
    """One cell run here; a training error is recorded as the trial's error and the run goes
    on. Picklable, for worker processes."""

    spec: ExperimentSpec
    run_dir: RunDirectory
    device: str
    data_dir: DataDir

    def __call__(self, cell: Cell) -> None:
        run_dir = self.run_dir
        run_dir.log_attempt(cell.key, "started")
        run_dir.event("trial_started", trial=cell.key)
        try:
            began = time.perf_counter()
            parts = build_parts(self.spec, cell.dataset, cell.seed, self.data_dir)
            loading_s = time.perf_counter() - began
            strategy = cell_strategy(self.spec, cell, run_dir)
            result = search_weights(
                self.spec, cell, strategy, parts, self.device,
                lambda point: run_dir.event("progress", trial=cell.key, **_progress_fields(point)),
            )  # fmt: skip
            run_dir.event("progress", trial=cell.key, phase="searched", weights=result.used_weights)
            search_s = loading_s + result.cost.wall_clock_s
            row = score_cell(self.spec, cell, parts, result, search_s, self.device, run_dir)
        except (TapWeightError, RuntimeError, ValueError) as error:
            run_dir.event("trial_error", trial=cell.key, error=f"{type(error).__name__}: {error}")
            return
        if run_dir.add_row(row):
            run_dir.event("trial_result", trial=cell.key, row=row.model_dump(mode="json"))


def _run_in_workers(task: _CellTask, cells: list[Cell], workers: int, threads: int) -> None:
    """Cells in ``workers`` spawned processes (CUDA cannot be forked); the first unexpected
    error stops the queue and is raised here."""
    for dataset in dict.fromkeys(cell.dataset for cell in cells):
        build_parts(task.spec, dataset, cells[0].seed, task.data_dir)  # fills the on-disk caches
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_set_threads, initargs=(threads,)
    ) as pool:
        futures = [pool.submit(task, cell) for cell in cells]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _progress_fields(point: dict) -> dict:
    return {k: point[k] for k in ("phase", "step", "weights", "metrics") if k in point}
