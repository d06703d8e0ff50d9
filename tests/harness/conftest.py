from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import RayHead, tiny_spec, wait_for

__all__ = ["TAPWEIGHT", "cli", "on_cluster", "tiny_spec", "wait_for", "write_spec"]

TAPWEIGHT = str(Path(sys.executable).with_name("tapweight"))


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [TAPWEIGHT, *args], capture_output=True, text=True, env=environment, timeout=timeout
    )


def on_cluster(head: RayHead) -> dict[str, str]:
    """The environment of a `tapweight run|resume` that joins the session's Ray head
    (``RAY_ADDRESS``, which ``--address`` reads) instead of starting a Ray of its own."""
    return {**head.env, "RAY_ADDRESS": head.address}
