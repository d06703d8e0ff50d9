"""Read what a harness run writes into its directory (``status.json``, ``events.jsonl``,
``results.jsonl``, ``report/``) while the run is still appending to it.

Only complete lines are read: the writer may be half-way through the last one.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.rundir import read_jsonl

SPEC_FILE = "spec.yaml"


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``status.json``, or None before the run wrote one (or mid-rewrite)."""
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


@dataclass
class _Progress:
    offset: int = 0
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)


class ProgressReader:
    """Per-trial progress from ``events.jsonl``, read incrementally and cached per file so that
    polling a long run does not re-parse everything it logged."""

    def __init__(self, capacity: int = 256) -> None:
        self._cache: OrderedDict[Path, _Progress] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def trials(self, run_dir: Path) -> list[dict[str, Any]]:
        path = run_dir / "events.jsonl"
        with self._lock:
            state = self._cache.pop(path, None) or _Progress()
            self._cache[path] = state
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
            for offset, event in read_jsonl(path, state.offset):
                _apply(state.trials, event)
                state.offset = offset
            return [dict(trial) for trial in state.trials.values()]


def _apply(trials: dict[str, dict[str, Any]], event: dict[str, Any]) -> None:
    name = event.get("trial")
    kind = event.get("type")
    if not isinstance(name, str):
        return
    trial = trials.setdefault(
        name,
        {"trial": name, "state": "pending", "step": None, "weights": None, "metrics": {}},
    )
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
            trial["weights"] = row["weights"]


def report_file(run_dir: Path, name: str) -> Path | None:
    """A file of the run's ``report/`` folder (``report.html``, ``figures/scores.png``) when the
    run wrote it; None for anything else, including names that would leave the folder."""
    root = (run_dir / "report").resolve()
    path = (root / name).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None
