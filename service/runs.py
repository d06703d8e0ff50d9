"""Per-trial progress of a harness run, followed through its events while the run is still
appending to them (the run directory itself is read only through :class:`RunDirectory`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.rundir import RunDirectory, split_trial_key
from service.schemas import TrialState


@dataclass
class _Progress:
    offset: int = 0
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)


class ProgressReader:
    """Per-trial progress from the run's events, read incrementally and cached per run so that
    polling a long run does not re-parse everything it logged."""

    def __init__(self, capacity: int = 256) -> None:
        self._cache: OrderedDict[Path, _Progress] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def trials(self, run: RunDirectory) -> list[TrialState]:
        with self._lock:
            state = self._cache.pop(run.path, None) or _Progress()
            self._cache[run.path] = state
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
            for offset, event in run.events_from(state.offset):
                _apply(state.trials, event)
                state.offset = offset
            return [TrialState.model_validate(trial) for trial in state.trials.values()]


def settled(trials: list[TrialState], job_final: bool) -> list[TrialState]:
    """A final job has no running trial: what had not finished was interrupted with it."""
    if not job_final:
        return trials
    open_states = ("pending", "running", "retrying")
    return [
        trial.model_copy(update={"state": "interrupted"}) if trial.state in open_states else trial
        for trial in trials
    ]


def _apply(trials: dict[str, dict[str, Any]], event: dict[str, Any]) -> None:
    name = event.get("trial")
    kind = event.get("type")
    if not isinstance(name, str):
        return
    if name not in trials:
        cell = split_trial_key(name)
        if cell is None:
            return
        dataset, strategy, seed = cell
        trials[name] = {
            "trial": name, "dataset": dataset, "strategy": strategy, "seed": seed,
            "state": "pending", "step": None, "weights": None, "metrics": {},
        }  # fmt: skip
    trial = trials[name]
    if trial["state"] == "done" and kind in ("trial_started", "progress", "trial_retry"):
        return  # a resumed run replays a finished trial's row: it stays done
    trial.setdefault("retries", 0)
    trial["updated"] = event.get("time")
    if kind == "trial_started":
        trial.update(state="running", error=None)
    elif kind == "progress":
        trial["state"] = "running"
        for name in ("step", "weights"):
            if event.get(name) is not None:
                trial[name] = event[name]
        if isinstance(event.get("metrics"), dict):
            trial["metrics"] = event["metrics"]
    elif kind == "trial_retry":  # Tune restarts it from its last checkpoint
        trial.update(state="retrying", error=str(event.get("error", "")) or None)
        trial["retries"] += 1
    elif kind == "trial_error":
        trial.update(state="error", error=str(event.get("error", "")) or None)
    elif kind == "trial_result":
        trial.update(state="done", error=None)
        row = event.get("row")
        if isinstance(row, dict) and row.get("weights") is not None:
            # no_cp has weights of a form, but no continued pretraining uses them
            trial["weights"] = row["weights"] if row.get("continued_pretraining", True) else None
