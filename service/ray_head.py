"""The service's own Ray head on 127.0.0.1, for when no cluster is configured (``RAY_ADDRESS``).

The head runs as a separate process group, so that it and the jobs on it outlive a crash of the
API process; the next start finds it again through a small state file in the runs directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from harness.loopback import LOOPBACK_ENV

__all__ = [
    "LocalRayHead",
    "RayUnavailable",
    "free_port",
    "jobs_api_up",
    "start_ray_head",
    "stop_ray_head",
]

log = logging.getLogger(__name__)


class RayUnavailable(RuntimeError):
    """The Ray cluster cannot be reached now; the reconciler tries again on its next tick."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env() -> dict[str, str]:
    """Environment of a Ray node started from this interpreter: its scripts on PATH (jobs call
    ``tapweight``), no usage reporting."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "RAY_USAGE_STATS_ENABLED": "0",
        **LOOPBACK_ENV,
    }


_NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "ray-client-server-port",
)


def start_ray_head(
    log_path: Path, num_cpus: int | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """``ray start --head --block`` on loopback in its own process group; returns the process
    and the dashboard URL once the Jobs API answers. Killing the process stops the head.
    ``port`` is its GCS port (default: a free one), for callers that join it with ``ray.init``."""
    ray_bin = Path(sys.executable).with_name("ray")
    dashboard_port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="tw-ray-")  # short: Ray's socket paths have a length cap
    command = [
        str(ray_bin if ray_bin.exists() else shutil.which("ray") or "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port or free_port()}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        # Fixed defaults (e.g. the agent's 52365) would clash with any other Ray on the host.
        *(f"--{name}={free_port()}" for name in _NODE_PORTS),
    ]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=ray_env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{dashboard_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RayUnavailable(f"ray start exited with code {process.returncode}; see {log_path}")
        if jobs_api_up(url):
            return process, url
        time.sleep(0.5)
    stop_ray_head(process.pid)
    raise RayUnavailable(f"the local Ray head did not come up in 120 s; see {log_path}")


def jobs_api_up(url: str) -> bool:
    """The head's dashboard answers and its GCS is healthy (a probe Ray leaves open when token
    auth is on)."""
    try:
        return requests.get(f"{url}/api/gcs_healthz", timeout=2).ok
    except requests.RequestException:
        return False


def stop_ray_head(pid: int, grace_s: float = 15) -> None:
    """SIGTERM the ``ray start --block`` process (it shuts its node down), then SIGKILL the
    process group of whatever is left."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class LocalRayHead:
    """The service's own Ray head, found again after a restart through ``.ray-head.json``."""

    def __init__(self, runs_dir: Path) -> None:
        self._state_file = runs_dir / ".ray-head.json"
        self._log = runs_dir / "ray-head.log"
        self.dashboard_url: str | None = None

    def ensure(self) -> str:
        """The dashboard URL of a live head, starting one when none answers."""
        if self.dashboard_url and jobs_api_up(self.dashboard_url):
            return self.dashboard_url
        try:
            state = json.loads(self._state_file.read_text())
            if jobs_api_up(state["dashboard_url"]):
                self.dashboard_url = state["dashboard_url"]
                return self.dashboard_url
        except (OSError, ValueError, KeyError, TypeError):
            pass
        log.info("starting a local Ray head (log: %s)", self._log)
        process, self.dashboard_url = start_ray_head(self._log)
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(
            json.dumps({"pid": process.pid, "dashboard_url": self.dashboard_url})
        )
        return self.dashboard_url
