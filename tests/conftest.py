"""Shared test setup: a private cache per session, no network, and the real-data folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_and_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the download/processed cache at a fresh temp dir and forbid downloads; the suite
    sets this itself, so `make test` needs nothing exported but the data directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAPWEIGHT_CACHE_DIR", str(tmp_path_factory.mktemp("tapweight-cache")))
        patch.setenv("TAPWEIGHT_OFFLINE", "1")
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield


@pytest.fixture(autouse=True)
def _ray_stays_on_loopback() -> Iterator[None]:
    """Fail a test whose in-process Ray has a node off 127.0.0.0/8: off loopback, drivers wait
    for a raylet that is not there until a timeout, so the regression would show as a hang."""
    yield
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    from harness.loopback import is_loopback_address

    off = [n["NodeManagerAddress"] for n in ray.nodes() if not is_loopback_address(
        n["NodeManagerAddress"]
    )]  # fmt: skip
    if off:
        pytest.fail(f"Ray nodes off loopback: {off}")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder from ``$TAPWEIGHT_DATA_DIR``; skips the test when it is not set."""
    raw = os.environ.get("TAPWEIGHT_DATA_DIR")
    if not raw:
        pytest.skip("TAPWEIGHT_DATA_DIR is not set: point it at the shared real-data folder")
    path = Path(raw)
    if not path.is_dir():
        pytest.skip(f"TAPWEIGHT_DATA_DIR={raw!r} is not a directory")
    return path
