"""Shared by the text-data tests: a fresh cache per test, no network, and a skip naming the
dataset folder a test needs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache per test (the cache tests count files in it) and no network."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(cache))
    monkeypatch.setenv("TAPWEIGHT_OFFLINE", "1")
    return cache


@pytest.fixture
def need(data_dir: Path):
    """``need("glue_rte")`` skips the test when the shared data lacks that folder."""

    def check(*folders: str) -> None:
        for folder in folders:
            if not (data_dir / folder).is_dir():
                pytest.skip(f"{folder} is not in TAPWEIGHT_DATA_DIR")

    return check
