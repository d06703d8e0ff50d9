"""Service test fixtures: a throwaway PostgreSQL cluster, a store on either backend, an
in-process client, and real `tapweight serve` processes on free loopback ports (the Ray head,
`ray_cluster`, is the session's, in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.postgres import server_binaries, throwaway_postgres
from service.ray_head import free_port
from service.settings import Settings
from tests.support import tiny_spec as shared_tiny_spec
from tests.support import wait_for

TOKENS = ("token-alice", "token-bob")
ALICE = {"Authorization": f"Bearer {TOKENS[0]}"}
BOB = {"Authorization": f"Bearer {TOKENS[1]}"}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # git-ignored


def tiny_spec(**changes) -> dict:
    """The shared tiny experiment, one seed and one finetuning epoch."""
    base = {"name": "svc-test", "corpus": "task", "seeds": [0]}
    base["protocol"] = {
        "pretrain": {"steps": 5, "batch_size": 32},
        "finetune": {"epochs": 1, "max_steps_per_epoch": 5},
    }
    return shared_tiny_spec(**{**base, **changes})


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1 (initdb + pg_ctl in a temp dir); its admin
    URL. initdb refuses root, so as root the server runs as the `postgres` system user."""
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with throwaway_postgres() as url:
        yield url


@contextmanager
def _postgres_database(server: str) -> Iterator[str]:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
        return
    with _postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


# -- the app in process ----------------------------------------------------------------------


class GivenSettings(Settings):
    """Settings from the given values only: the test run's environment and .env never leak in."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **others):
        return (init_settings,)


def settings_for(database_url: str, tmp_path: Path, **changes) -> Settings:
    values = {
        "database_url": database_url,
        "api_tokens": TOKENS,
        "runs_dir": tmp_path / "runs",
        "executor": "none",
        "poll_interval_s": 0.2,
        **changes,
    }
    return GivenSettings(**values)


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a fresh store, store-only (nothing is executed)."""
    with TestClient(create_app(settings_for(database_url, tmp_path))) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on SQLite only, for tests about the HTTP layer rather than the store."""
    settings = settings_for(f"sqlite:///{tmp_path / 'service.db'}", tmp_path)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# -- real processes --------------------------------------------------------------------------


@dataclass
class Server:
    """A `tapweight serve` subprocess on a fixed loopback port (restartable after a kill)."""

    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @classmethod
    def create(cls, database_url: str, runs_dir: Path, **env: str) -> Server:
        runs_dir.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TAPWEIGHT_API_TOKENS": ",".join(TOKENS),
            "TAPWEIGHT_RUNS_DIR": str(runs_dir),
            "TAPWEIGHT_POLL_INTERVAL_S": "0.5",
            **env,
        }
        if "RAY_ADDRESS" not in env:
            environment.pop("RAY_ADDRESS", None)  # the service then starts its own head
        return cls(f"http://127.0.0.1:{free_port()}", environment, runs_dir / "serve.log")

    def start(self, timeout: float = 120) -> Server:
        port = self.url.rsplit(":", 1)[1]
        command = ["serve", "--host", "127.0.0.1", "--port", port]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tapweight.cli", *command],
                env=self.env,
                cwd=self.env["TAPWEIGHT_RUNS_DIR"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._up, timeout, f"tapweight serve on {self.url} (log: {self.log})")
        return self

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"tapweight serve exited: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def submit(self, spec: dict) -> str:
        response = httpx.post(f"{self.url}/jobs", json=spec, headers=ALICE, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        response = httpx.get(f"{self.url}/jobs/{job_id}", headers=ALICE, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `tapweight serve` subprocesses (stopped at the end of the test)."""
    servers: list[Server] = []

    def start(database_url: str, **env: str) -> Server:
        server = Server.create(database_url, tmp_path / "runs", **env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


# -- a browser ------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium that reaches loopback only, as on a network without internet: every
    other host name fails to resolve and every other address goes to a dead proxy. Its
    performance log records each request (see `requested_hosts`)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver_path.exists()):
        pytest.skip("chromium and chromedriver (Debian chromium, chromium-driver) are absent")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{free_port()}",  # loopback itself is never proxied
        f"--user-data-dir={tempfile.mkdtemp(prefix='tw-chromium-')}",
        "--window-size=1400,1400",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=DriverService(str(driver_path)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def requested_hosts(driver: Any) -> set[str]:
    """The hosts of every network request made since the last call (not data: or the
    browser's own chrome: pages)."""
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlsplit(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.hostname)
    return hosts
