"""TapWeight's checkpoints: the whole state of a run, written atomically, resumed exactly.

Betty has no checkpointing. A checkpoint holds every level's module, optimizer, scheduler, step
count, pass count and batch position, the RNG states, the trajectory so far and the elapsed
time, so a resumed run goes on where the saved one stopped; one made under other settings is
refused rather than silently continued.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tapweight.core.config import RESUMABLE_FIELDS, TapWeightConfig
from tapweight.core.problems import Joint, Level
from tapweight.errors import ConfigError
from tapweight.result import TrajectoryPoint

__all__ = [
    "CHECKPOINT_NAME",
    "checkpoint_state",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "tapweight-checkpoint.pt"
_CHECKPOINT_VERSION = 2


def checkpoint_state(
    levels: dict[str, Level],
    config: TapWeightConfig,
    objective_names: Sequence[str],
    task_name: str,
    step: int,
    trajectory: Sequence[TrajectoryPoint],
    elapsed: float,
) -> dict[str, Any]:
    """Everything a resumed run needs, after ``step`` steps and ``elapsed`` seconds."""
    saved_levels: dict[str, dict[str, Any]] = {}
    for name, level in levels.items():
        saved_levels[name] = {
            "module": level.module.state_dict(),
            "optimizer": level.optimizer.state_dict(),
            "scheduler": level.scheduler.state_dict() if level.scheduler else None,
            "count": level._count,
            "passes": level.passes,
            "batches": level.batches.state_dict(),
        }
        if isinstance(level, Joint):
            saved_levels[name]["task_batches"] = level.task_batches.state_dict()
    return {
        "version": _CHECKPOINT_VERSION,
        "config": config.model_dump(),
        "objectives": list(objective_names),
        "task": task_name,
        "step": step,
        "levels": saved_levels,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
        "trajectory": [p.model_dump() for p in trajectory],
        "elapsed": elapsed,
    }


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, then replace: a crash mid-write keeps the last good one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The saved state, its tensors on the CPU (loading into the levels places them)."""
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


def _check_compatible(
    state: dict[str, Any],
    config: TapWeightConfig,
    objective_names: Sequence[str],
    task_name: str,
    path: Path,
) -> None:
    saved, current = state["config"], config.model_dump()
    for field, value in current.items():
        if field not in RESUMABLE_FIELDS and saved.get(field) != value:
            raise ConfigError(
                f"cannot resume {path}: it was made with {field}="
                f"{saved.get(field)!r}, this run has {field}={value!r}"
            )
    for what, now in (("objectives", list(objective_names)), ("task", task_name)):
        if state[what] != now:
            raise ConfigError(
                f"cannot resume {path}: it was made for {what} "
                f"{state[what]!r}, this run uses {now!r}"
            )


def restore_checkpoint(
    state: dict[str, Any],
    levels: dict[str, Level],
    config: TapWeightConfig,
    objective_names: Sequence[str],
    task_name: str,
    path: Path,
) -> None:
    """Put ``state`` back into ``levels`` and the RNGs, after checking that it was made by a
    run with the same settings (:data:`RESUMABLE_FIELDS` aside), objectives and task."""
    _check_compatible(state, config, objective_names, task_name, path)
    for name, level in levels.items():
        saved = state["levels"][name]
        level.module.load_state_dict(saved["module"])
        level.optimizer.load_state_dict(saved["optimizer"])
        if level.scheduler is not None:
            level.scheduler.load_state_dict(saved["scheduler"])
        level._count, level.passes = saved["count"], saved["passes"]
        level.batches.load_state_dict(saved["batches"])
        if isinstance(level, Joint):
            level.task_batches.load_state_dict(saved["task_batches"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
