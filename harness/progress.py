"""Terminal progress for a running experiment, read from the run directory's event log.

A thread tails ``events.jsonl`` (written by the Tune callback) and shows an overall bar (trials
done of all) and one line per running trial (phase, step, λ, latest metric), so what the
terminal shows is exactly what the service and the report read.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.rundir import RunDirectory

__all__ = ["TrialProgress"]


def _describe(event: dict[str, Any]) -> str:
    parts = [event.get("phase", "")]
    if "step" in event:
        parts.append(f"step {event['step']}")
    if event.get("weights"):
        parts.append("λ " + "/".join(f"{w:.2f}" for w in event["weights"]))
    for name, value in (event.get("metrics") or {}).items():
        if name.startswith("valid_") and isinstance(value, float):
            parts.append(f"{name} {value:.3f}")
            break
    return " ".join(p for p in parts if p)


class TrialProgress:
    def __init__(self, total: int, done: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not enabled,
        )
        self.overall = self.progress.add_task("trials", total=total, completed=done)
        self.running: dict[str, Any] = {}
        self.run_dir: RunDirectory | None = None
        self.offset = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> TrialProgress:
        if self.enabled:
            self.progress.start()
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join(timeout=2)
            self._poll()
            self.progress.stop()

    def attach(self, run_dir: RunDirectory) -> None:
        """Follow this run directory's events from now on."""
        self.run_dir = run_dir
        self.offset = run_dir.events_file.stat().st_size if run_dir.events_file.exists() else 0
        self.progress.update(self.overall, description="trials")

    def stage(self, description: str) -> None:
        self.progress.update(self.overall, description=description)

    def _follow(self) -> None:
        while not self.stop.wait(0.5):
            self._poll()

    def _poll(self) -> None:
        if self.run_dir is None:
            return
        for offset, event in self.run_dir.events_from(self.offset):
            self.offset = offset
            trial, kind = event.get("trial"), event["type"]
            if trial is None:
                continue
            if kind == "trial_started" and trial not in self.running:
                self.running[trial] = self.progress.add_task(f"  {trial}", total=None)
            elif kind == "progress" and trial in self.running:
                self.progress.update(
                    self.running[trial], description=f"  {trial}: {_describe(event)}"
                )
            elif kind in ("trial_result", "trial_error") and trial in self.running:
                self.progress.remove_task(self.running.pop(trial))
                if kind == "trial_result":
                    self.progress.advance(self.overall)
