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


class _SharedRayHead:
    """The session's Ray head, started when first needed and again when something stopped it:
    the cluster-launcher test's `ray stop` (cluster/local.yaml) stops every Ray on the machine."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._pid: int | None = None
        self._head: RayHead | None = None

    def live(self) -> RayHead:
        from harness.loopback import LOOPBACK_ENV
        from service.ray_head import free_port, jobs_api_up, start_ray_head

        if self._head is not None and jobs_api_up(self._head.jobs_url):
            return self._head
        self.stop()
        ray = Path(sys.executable).with_name("ray")
        has_token = "RAY_AUTH_TOKEN" in os.environ or (Path.home() / ".ray" / "auth_token").exists()
        if not has_token:
            subprocess.run([ray, "get-auth-token", "--generate"], capture_output=True, check=True)
        port = free_port()
        process, jobs_url = start_ray_head(self._logs / "head.log", num_cpus=2, port=port)
        self._pid = process.pid
        self._head = RayHead(
            f"127.0.0.1:{port}", jobs_url, {"RAY_AUTH_MODE": "token", **LOOPBACK_ENV}
        )
        return self._head

    def stop(self) -> None:
        from service.ray_head import stop_ray_head

        if self._pid is not None:
            stop_ray_head(self._pid, grace_s=3)
        self._pid, self._head = None, None


@pytest.fixture(scope="session")
def _shared_ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedRayHead]:
    heads = _SharedRayHead(tmp_path_factory.mktemp("ray-head"))
    try:
        yield heads
    finally:
        heads.stop()


@pytest.fixture(scope="module")
def ray_head(_shared_ray_head: _SharedRayHead) -> RayHead:
    """One Ray head on loopback (2 CPUs) for every test that runs on a cluster it does not start
    or kill itself: starting Ray costs seconds each time. Token auth is on with this machine's
    token, as ``ray start`` does once a token exists (one is generated when none does); its
    clients set RAY_AUTH_MODE=token to send it."""
    return _shared_ray_head.live()


@pytest.fixture(scope="module")
def ray_cluster(ray_head: RayHead) -> str:
    """The shared head's Jobs API URL: the service's RAY_ADDRESS."""
    return ray_head.jobs_url
