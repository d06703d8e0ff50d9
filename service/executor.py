"""Run harness experiments as Ray Jobs (``tapweight run`` / ``tapweight resume``).

The API process only talks to the Ray Jobs API; the training runs in the job's driver and its
Tune trials. Without ``RAY_ADDRESS`` the service starts its own head on 127.0.0.1 as a separate
process group, so that the head and the jobs on it outlive a crash of the API process; the next
start finds it again through a small state file in the runs directory.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.loopback import LOOPBACK_ENV
from harness.rundir import RunDirectory
from service.settings import Settings

log = logging.getLogger(__name__)


class RayUnavailable(RuntimeError):
    """The Ray cluster cannot be reached now; the reconciler tries again on its next tick."""


class RunState(str, enum.Enum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    stopped = "stopped"
    lost = "lost"  # Ray has no job with this submission id (e.g. the head was restarted)


# Failures of Ray itself rather than of the run: the job is resubmitted from its checkpoints.
_INFRASTRUCTURE_ERRORS = {
    "JOB_SUPERVISOR_ACTOR_DIED",
    "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
    "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
}


@dataclass(frozen=True)
class RunInfo:
    state: RunState
    exit_code: int | None = None
    infrastructure_failure: bool = False


def entrypoint(run: RunDirectory, resume: bool) -> str:
    """The shell command of the Ray Job (Ray sets RAY_ADDRESS for it, which the CLI reads):
    resume when the run already wrote its spec.json, so finished trials are kept."""
    out = shlex.quote(str(run.path))
    if resume:
        return f"tapweight resume {out} --no-progress"
    spec = shlex.quote(str(run.input_spec_file))
    return f"tapweight run {spec} --out {out} --no-progress"


class RayExecutor:
    """Submit, poll and stop Ray Jobs; start a local head when no cluster is configured."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = None
        self._local = None if settings.ray_address else LocalRayHead(settings.runs_dir)

    @property
    def address(self) -> str:
        if self._local is not None:
            return self._local.dashboard_url or "(local head not started)"
        return str(self._settings.ray_address)

    def _jobs(self):
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            use_ray_token_auth_like_ray_start()
            address = self._local.ensure() if self._local else self._settings.ray_address
            try:
                self._client = JobSubmissionClient(address)
            except (ConnectionError, requests.RequestException, RuntimeError) as error:
                raise RayUnavailable(f"Ray at {address} is not reachable: {error}") from None
        return self._client

    def _call(self, method: str, *args, **kwargs):
        try:
            return getattr(self._jobs(), method)(*args, **kwargs)
        except requests.RequestException as error:
            self._client = None  # the head may have moved or restarted: reconnect next time
            raise RayUnavailable(f"Ray Jobs API call failed: {error}") from None
        except RuntimeError as error:
            # The SDK's HTTP errors; a 5xx (e.g. "no available agent" while a node starts)
            # passes, so it is retried on the next pass rather than treated as an answer.
            if re.search(r"status code 5\d\d", str(error)):
                raise RayUnavailable(f"Ray Jobs API: {error}") from None
            raise

    def submit(self, submission_id: str, run: RunDirectory, resume: bool) -> None:
        """Submit once; a submission id Ray already knows means an earlier try got through."""
        env = self._settings.job_env()  # the job's driver passes these on to its trials
        try:
            self._call(
                "submit_job",
                entrypoint=entrypoint(run, resume),
                submission_id=submission_id,
                runtime_env={"env_vars": env},
                metadata={"tapweight_run_dir": str(run.path)},
            )
        except RuntimeError as error:
            if isinstance(error, RayUnavailable) or "already exists" not in str(error):
                raise

    def info(self, submission_id: str) -> RunInfo:
        try:
            details = self._call("get_job_info", submission_id)
        except RuntimeError as error:
            if not isinstance(error, RayUnavailable) and "404" in str(error):
                return RunInfo(RunState.lost)
            raise
        status = str(details.status.value if hasattr(details.status, "value") else details.status)
        state = {
            "PENDING": RunState.pending,
            "RUNNING": RunState.running,
            "SUCCEEDED": RunState.succeeded,
            "FAILED": RunState.failed,
            "STOPPED": RunState.stopped,
        }[status]
        error_type = getattr(details.error_type, "value", details.error_type)
        code = details.driver_exit_code
        infrastructure = state is RunState.failed and (
            error_type in _INFRASTRUCTURE_ERRORS or (code is not None and code < 0)
        )
        return RunInfo(state, code, infrastructure)

    def run_error(self, submission_id: str) -> str | None:
        """The run's own error message from its log: the CLI's last ``error:`` message (which
        the console may have wrapped over several lines), else the last line printed."""
        try:
            logs = self._call("get_job_logs", submission_id)
        except RuntimeError:
            return None
        lines = [line.strip() for line in logs.splitlines() if line.strip()]
        for index in range(len(lines) - 1, -1, -1):
            if lines[index].startswith("error:"):
                return " ".join(lines[index:]).removeprefix("error:").strip()
        return lines[-1] if lines else None

    def stop(self, submission_id: str) -> None:
        try:
            self._call("stop_job", submission_id)
        except RuntimeError as error:
            if isinstance(error, RayUnavailable) or "404" not in str(error):
                raise


def use_ray_token_auth_like_ray_start() -> None:
    """Send Ray's auth token when the cluster expects one. ``ray start`` turns token auth on
    when RAY_AUTH_MODE is unset and a token exists (~/.ray/auth_token or RAY_AUTH_TOKEN), but
    the Jobs client only looks at RAY_AUTH_MODE; this applies ``ray start``'s rule (the one
    ``ray.init`` applies too) to this process. An explicit RAY_AUTH_MODE is respected."""
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


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


def start_ray_head(log_path: Path, num_cpus: int | None = None) -> tuple[subprocess.Popen, str]:
    """``ray start --head --block`` on loopback in its own process group; returns the process
    and the dashboard URL once the Jobs API answers. Killing the process stops the head."""
    ray_bin = Path(sys.executable).with_name("ray")
    dashboard_port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="tw-ray-")  # short: Ray's socket paths have a length cap
    command = [
        str(ray_bin if ray_bin.exists() else shutil.which("ray") or "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={free_port()}",
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
