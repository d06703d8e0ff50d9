"""Run harness experiments as Ray Jobs (``tapweight run`` / ``tapweight resume``): submit,
poll and stop them through the Ray Jobs API.

The API process only talks to that API; the training runs in the job's driver and its Tune
trials. The cluster is ``RAY_ADDRESS``, else the service's own head (:mod:`service.ray_head`).
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import requests

from harness.rundir import RunDirectory
from service.ray_head import LocalRayHead, RayUnavailable
from service.settings import Settings

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = ["RayJobsClient", "RayUnavailable", "RunInfo", "RunState", "entrypoint"]

T = TypeVar("T")


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


class RayJobsClient:
    """Submit, poll and stop Ray Jobs; start a local head when no cluster is configured."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: JobSubmissionClient | None = None
        self._local = None if settings.ray_address else LocalRayHead(settings.runs_dir)

    @property
    def address(self) -> str:
        if self._local is not None:
            return self._local.dashboard_url or "(local head not started)"
        return str(self._settings.ray_address)

    def _jobs(self) -> JobSubmissionClient:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            use_ray_token_auth_like_ray_start()
            address = self._local.ensure() if self._local else self._settings.ray_address
            try:
                self._client = JobSubmissionClient(address)
            except (ConnectionError, requests.RequestException, RuntimeError) as error:
                raise RayUnavailable(f"Ray at {address} is not reachable: {error}") from None
        return self._client

    def _call(self, request: Callable[[JobSubmissionClient], T]) -> T:
        """``request`` on the Jobs API, with Ray's transient failures as RayUnavailable."""
        try:
            return request(self._jobs())
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
                lambda jobs: jobs.submit_job(
                    entrypoint=entrypoint(run, resume),
                    submission_id=submission_id,
                    runtime_env={"env_vars": env},
                    metadata={"tapweight_run_dir": str(run.path)},
                )
            )
        except RuntimeError as error:
            if isinstance(error, RayUnavailable) or "already exists" not in str(error):
                raise

    def info(self, submission_id: str) -> RunInfo:
        try:
            details = self._call(lambda jobs: jobs.get_job_info(submission_id))
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
            error_type in _INFRASTRUCTURE_ERRORS or (code is not None and (code < 0 or code > 128))
        )  # a driver killed by a signal (the shell's 128 + N; Ray's -N) did not fail by itself
        return RunInfo(state, code, infrastructure)

    def run_error(self, submission_id: str) -> str | None:
        """The run's own error message from its log: the CLI's last ``error:`` message (which
        the console may have wrapped over several lines), else the last line printed."""
        try:
            logs = self._call(lambda jobs: jobs.get_job_logs(submission_id))
        except RuntimeError:
            return None
        lines = [line.strip() for line in logs.splitlines() if line.strip()]
        for index in range(len(lines) - 1, -1, -1):
            if lines[index].startswith("error:"):
                return " ".join(lines[index:]).removeprefix("error:").strip()
        return lines[-1] if lines else None

    def stop(self, submission_id: str) -> None:
        try:
            self._call(lambda jobs: jobs.stop_job(submission_id))
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
