"""Fault injection for fault-tolerance tests and drills.

``TAPWEIGHT_INJECT_FAULT=<substring>`` makes the first attempt of every trial whose key contains
the substring raise right after its search is checkpointed; the retry (Ray Tune's
``FailureConfig``) must then continue from that checkpoint. Unset, this does nothing.
"""

from __future__ import annotations

import os

from harness.rundir import RunDirectory
from tapweight.errors import TrainingError

__all__ = ["maybe_fail", "FAULT_ENV"]

FAULT_ENV = "TAPWEIGHT_INJECT_FAULT"


def maybe_fail(key: str, run_dir: RunDirectory) -> None:
    pattern = os.environ.get(FAULT_ENV)
    if not pattern or pattern not in key:
        return
    marker = run_dir.trial_dir(key) / "fault-injected"
    if marker.exists():
        return
    marker.touch()
    raise TrainingError(f"injected fault in trial {key} ({FAULT_ENV}={pattern})")
