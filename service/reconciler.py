"""Bookkeeping loop of the API process: hands queued jobs to Ray, follows them to a final
state, stores their results, and re-queues what Ray lost.

Ray calls happen outside database transactions (a slow cluster must not hold SQLite's write
lock); each change is then applied in a short transaction that re-reads the job first, so a
cancel that arrived meanwhile is never overwritten. The same pass runs at start-up, which is
how a restarted service re-attaches to jobs still running on Ray, or re-queues them with
``tapweight resume`` when Ray no longer knows them.

While the database is unreachable every pass fails before it changes anything; the reconciler
says so once, tries again each poll interval, and catches up (results written meanwhile,
jobs that finished meanwhile) on the first pass that gets through.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from harness.rundir import RunDirectory
from service import crud
from service.db import UNAVAILABLE, Database
from service.models import Job, JobStatus
from service.ray_jobs import RayJobsClient, RayUnavailable, RunInfo, RunState
from service.settings import Settings

log = logging.getLogger(__name__)


def clean_error(message: str | None, limit: int = 2000) -> str | None:
    """A run's error as users may see it: no traceback, bounded length."""
    if not message:
        return None
    message = message.split("Traceback (most recent call last)")[0].strip()
    return message[:limit] or None


class Reconciler:
    def __init__(self, db: Database, settings: Settings, executor: RayJobsClient) -> None:
        self._db = db
        self._settings = settings
        self._executor = executor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ray_reachable: bool | None = None  # None until the first Ray call
        self._database_failures = 0  # passes in a row that could not reach the database
        self._database_lost_at = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self._database_reached()
            except UNAVAILABLE as error:
                self._database_unreachable(error)
            except Exception:  # keep bookkeeping alive through any single bad pass
                log.exception("reconciler pass failed")
            self._stop.wait(self._settings.poll_interval_s)

    def _database_unreachable(self, error: Exception) -> None:
        if self._database_failures == 0:
            self._database_lost_at = time.monotonic()
            reason = str(getattr(error, "orig", None) or error).splitlines()[0]
            log.warning(
                "the database is unreachable (%s); retrying every %.1f s",
                reason,
                self._settings.poll_interval_s,
            )
        self._database_failures += 1

    def _database_reached(self) -> None:
        if self._database_failures:
            log.warning(
                "the database is reachable again after %d failed pass(es) in %.1f s",
                self._database_failures,
                time.monotonic() - self._database_lost_at,
            )
            self._database_failures = 0

    def tick(self) -> None:
        """One pass over every job that is not final."""
        with self._db.read() as session:
            job_ids = crud.active_job_ids(session)
        for job_id in job_ids:
            if self._stop.is_set():
                return
            try:
                self._reconcile(job_id)
                self.ray_reachable = True
            except RayUnavailable as error:
                self.ray_reachable = False
                log.warning("%s", error)
                return  # no point asking about the other jobs now

    def _reconcile(self, job_id: str) -> None:
        with self._db.read() as session:
            job = session.get(Job, job_id)
            if job is None or job.status.final:
                return
            status, submission_id = job.status, job.submission_id
            cancel, attempts, run = job.cancel_requested, job.attempts, RunDirectory(job.run_dir)
            spec = job.spec
        if status is JobStatus.queued:
            if cancel:  # asked while it was running, then Ray lost it: nothing left to stop
                with self._db.transaction() as session:
                    job = session.get(Job, job_id, with_for_update=True)
                    if job is not None and job.status is JobStatus.queued:
                        crud.set_status(job, JobStatus.cancelled, "cancelled before resubmission")
            else:
                self._submit(job_id, spec, run, attempts)
            return
        assert submission_id is not None
        if cancel:
            self._executor.stop(submission_id)
        info = self._executor.info(submission_id)
        self._ingest(job_id, run)
        log_error = None
        if info.state is RunState.failed and not info.infrastructure_failure:
            log_error = self._executor.run_error(submission_id)
        with self._db.transaction() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status is not status or job.submission_id != submission_id:
                return  # changed by someone else meanwhile; next pass sees the new state
            self._follow(job, info, run, log_error)

    def _submit(self, job_id: str, spec: dict[str, Any], run: RunDirectory, attempts: int) -> None:
        run.write_input_spec(spec)
        resume = run.has_spec()  # the run started before: keep its trials
        submission_id = f"tapweight-{job_id}-{attempts + 1}"
        self._executor.submit(submission_id, run, resume)
        with self._db.transaction() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return
            job.submission_id = submission_id
            job.attempts = attempts + 1
            if job.status is JobStatus.queued and not job.cancel_requested:
                how = "resumed from its checkpoints" if resume else "started"
                crud.set_status(job, JobStatus.submitted, f"{how} as Ray job {submission_id}")
            else:
                job.cancel_requested = True  # cancelled while we submitted: stop it next pass

    def _ingest(self, job_id: str, run: RunDirectory) -> None:
        rows = run.rows()
        status = run.status()
        with self._db.transaction() as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            crud.store_results(session, job, rows)
            if status is not None and status.trials_total is not None:
                job.trials_total = status.trials_total
            if status is not None and status.trials_done is not None:
                job.trials_done = status.trials_done

    def _follow(self, job: Job, info: RunInfo, run: RunDirectory, log_error: str | None) -> None:
        state = info.state
        if state is RunState.pending:
            return
        if state is RunState.running:
            if job.status is JobStatus.submitted:
                crud.set_status(job, JobStatus.running, "running on Ray")
            return
        if state is RunState.succeeded:
            crud.set_status(job, JobStatus.succeeded, "finished")
            return
        if state is RunState.stopped:
            why = "stopped on request" if job.cancel_requested else "stopped on Ray directly"
            crud.set_status(job, JobStatus.cancelled, why)
            return
        if state is RunState.failed and not info.infrastructure_failure:
            run_status = run.status()
            run_error = (run_status.error if run_status else None) or log_error
            job.error = clean_error(run_error) or f"the run exited with code {info.exit_code}"
            crud.set_status(job, JobStatus.failed, job.error)
            return
        # Lost by Ray (restarted head), or its driver killed (by a signal, by Ray, by the OOM
        # killer): an infrastructure failure, so resubmit from the checkpoints.
        why = (
            f"the driver was killed (exit code {info.exit_code})"
            if state is RunState.failed
            else f"Ray lost the run ({state.value})"
        )
        run_status = run.status()
        requeues = crud.automatic_requeues(job)
        if run_status is not None and run_status.state == "finished":
            crud.set_status(job, JobStatus.succeeded, "finished (Ray lost the job afterwards)")
        elif job.cancel_requested:
            crud.set_status(job, JobStatus.cancelled, f"cancelled; {why}")
        elif requeues >= self._settings.max_requeues:
            job.error = (
                f"{why}; re-queued {requeues} time(s) already (TAPWEIGHT_MAX_REQUEUES="
                f"{self._settings.max_requeues}); giving up — POST /jobs/{job.id}/resume to try "
                "again"
            )
            crud.set_status(job, JobStatus.failed, job.error)
        else:
            crud.set_status(
                job,
                JobStatus.queued,
                f"{why}; {crud.REQUEUED} ({requeues + 1} of {self._settings.max_requeues})",
            )
