"""Run an experiment on this machine without Ray: trials one after another, or in a few worker
processes.

For a single machine where Ray is not installed or not wanted (one workstation GPU, a debugging
session): the same cells, shared protocol, run directory, rows and report as the Ray Tune runner,
but no retries and no ASHA; grid and Optuna search in-process. Workers share the GPU, if any, and
write to the run directory under its file lock. Resuming skips every cell that already has a row;
an interrupted cell starts again (TapWeight from its own checkpoint).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from harness.progress import TrialProgress
from harness.rundir import RunDirectory
from harness.spec import ExperimentSpec
from harness.trials import (
    Cell,
    build_parts,
    cells_of,
    conclude_run,
    score_cell,
    search_weights,
)
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
    workers: int = 1,
) -> RunDirectory:  # fmt: skip
    """Start ``spec`` in a new run directory and run its trials here, ``workers`` at a time."""
    _check_workers(workers)
    run_dir = RunDirectory(out_dir)
    run_dir.create(spec)
    return _execute(spec, run_dir, progress, resumed=False, workers=workers)


def resume_local(
    out_dir: str | os.PathLike[str], progress: bool = True, workers: int = 1
) -> RunDirectory:
    """Run the cells of an interrupted run that have no row yet."""
    _check_workers(workers)
    run_dir = RunDirectory(out_dir)
    spec = run_dir.load_spec()
    if run_dir.status()["state"] == "finished":
        raise ConfigError(f"{run_dir.path} is already finished; `tapweight report` redraws it")
    return _execute(spec, run_dir, progress, resumed=True, workers=workers)


def _check_workers(workers: int) -> None:
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")


def _execute(
    spec: ExperimentSpec, run_dir: RunDirectory, progress: bool, resumed: bool, workers: int
) -> RunDirectory:
    cells = cells_of(spec)
    try:
        device = local_device(spec)
        run_dir.event("experiment_started", trials=len(cells), resumed=resumed, spec=spec.name)
        run_dir.set_status("running", len(cells))
        done = {row["trial"] for row in run_dir.rows()}
        todo = [cell for cell in cells if cell.key not in done]
        threads = max(1, int(spec.resources.cpu))
        with TrialProgress(len(cells), len(done), enabled=progress) as bar:
            bar.attach(run_dir)
            if workers == 1 or len(todo) < 2:
                _set_threads(threads)
                for cell in todo:
                    _run_cell(spec, cell, run_dir, device)
            else:
                _run_in_workers(spec, todo, run_dir, device, workers, threads)
    except BaseException as error:  # an interrupt too: the run stays resumable
        run_dir.mark_failed(
            len(cells), str(error) if isinstance(error, TapWeightError) else repr(error)
        )
        raise
    return conclude_run(
        run_dir, cells, "failed", f"see {run_dir.events_file} and `tapweight resume --local`"
    )


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_in_workers(
    spec: ExperimentSpec, cells: list[Cell], run_dir: RunDirectory, device: str, workers: int,
    threads: int,
) -> None:  # fmt: skip
    """Cells in ``workers`` spawned processes (CUDA cannot be forked); the first unexpected
    error stops the queue and is raised here."""
    for dataset in dict.fromkeys(cell.dataset for cell in cells):
        build_parts(spec, dataset, cells[0].seed)  # fills the on-disk caches before workers race
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_set_threads, initargs=(threads,)
    ) as pool:
        futures = [pool.submit(_run_cell, spec, cell, run_dir, device) for cell in cells]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _run_cell(spec: ExperimentSpec, cell: Cell, run_dir: RunDirectory, device: str) -> None:
    """One cell; a training error is recorded as the trial's error and the run goes on."""
    run_dir.log_attempt(cell.key, "started")
    run_dir.event("trial_started", trial=cell.key)
    try:
        began = time.perf_counter()
        parts = build_parts(spec, cell.dataset, cell.seed)
        loading_s = time.perf_counter() - began
        result = search_weights(
            spec, cell, parts, run_dir, device,
            lambda point: run_dir.event("progress", trial=cell.key, **_progress_fields(point)),
            tune_searched=False,
        )  # fmt: skip
        run_dir.event("progress", trial=cell.key, phase="searched", weights=result.weights)
        row = score_cell(spec, cell, parts, result, loading_s + result.cost.wall_clock_s, device)
    except (TapWeightError, RuntimeError, ValueError) as error:
        run_dir.event("trial_error", trial=cell.key, error=f"{type(error).__name__}: {error}")
        return
    if run_dir.add_row(row):
        run_dir.event("trial_result", trial=cell.key, row=row)


def _progress_fields(point: dict) -> dict:
    return {k: point[k] for k in ("phase", "step", "weights", "metrics") if k in point}
