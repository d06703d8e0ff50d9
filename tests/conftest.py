"""Shared test setup: a private cache per session, no network, and the real-data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_and_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the download/processed cache at a fresh temp dir and forbid downloads."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAPWEIGHT_CACHE_DIR", str(tmp_path_factory.mktemp("tapweight-cache")))
        patch.setenv("TAPWEIGHT_OFFLINE", "1")
        yield


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
