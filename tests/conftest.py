"""Shared test setup: a private cache per session, no network, the real-data folder, and one
Ray head for the tests that run on a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RayHead


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


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """One Ray head on loopback (2 CPUs) for every test that runs on a cluster it does not start
    or kill itself: starting Ray costs seconds each time. Token auth is on with this machine's
    token, as ``ray start`` does once a token exists (one is generated when none does); its
    clients set RAY_AUTH_MODE=token to send it."""
    from harness.loopback import LOOPBACK_ENV
    from service.ray_head import free_port, start_ray_head, stop_ray_head

    ray = Path(sys.executable).with_name("ray")
    has_token = "RAY_AUTH_TOKEN" in os.environ or (Path.home() / ".ray" / "auth_token").is_file()
    if not has_token:
        subprocess.run([ray, "get-auth-token", "--generate"], capture_output=True, check=True)
    port = free_port()
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    process, jobs_url = start_ray_head(log, num_cpus=2, port=port)
    env = {"RAY_AUTH_MODE": "token", **LOOPBACK_ENV}
    try:
        yield RayHead(f"127.0.0.1:{port}", jobs_url, env)
    finally:
        stop_ray_head(process.pid, grace_s=3)


@pytest.fixture(scope="session")
def ray_cluster(ray_head: RayHead) -> str:
    """The shared head's Jobs API URL: the service's RAY_ADDRESS."""
    return ray_head.jobs_url
