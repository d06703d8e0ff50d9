"""Store operations on jobs; every status change goes through :func:`set_status` so that the
history of a job is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import JSON, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from harness.paired import PairedDifference, paired_differences
from harness.row import ResultRow
from harness.spec import ExperimentSpec
from harness.summary import summarize
from service.models import (
    ACTIVE_STATUSES,
    Job,
    JobEvent,
    JobStatus,
    TrialResult,
    new_job_id,
    utcnow,
)
from service.schemas import SeedScore, StrategyResult
from tapweight.downstream.metrics import HIGHER_IS_BETTER


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different spec."""


def create_job(
    session: Session, owner: str, spec: ExperimentSpec, key: str | None, runs_dir: Path
) -> tuple[Job, bool]:
    """Insert a queued job; ``(job, False)`` is an earlier job with the same key.

    The unique constraint on (owner, key) decides between concurrent requests: the loser's
    insert fails and it returns the winner's job.
    """
    job_id = new_job_id()
    job = Job(
        id=job_id,
        owner=owner,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.spec_hash(),
        idempotency_key=key,
        run_dir=str((runs_dir / job_id).resolve()),
        status=JobStatus.queued,
    )
    job.events.append(JobEvent(status=JobStatus.queued.value, detail="submitted"))
    session.add(job)
    try:
        session.commit()
        return job, True
    except IntegrityError:
        session.rollback()
        if key is None:
            raise
    existing = session.scalars(select(Job).where(Job.owner == owner, Job.idempotency_key == key))
    earlier = existing.one()
    session.commit()  # ends the read; unlike rollback, it leaves `earlier` loaded
    if earlier.spec_hash != job.spec_hash:
        raise IdempotencyConflict(key)
    return earlier, False


def get_job(session: Session, owner: str, job_id: str) -> Job | None:
    """The job when it exists and belongs to ``owner`` (another owner's job is not found)."""
    job = session.get(Job, job_id)
    return job if job is not None and job.owner == owner else None


def list_jobs(
    session: Session, owner: str, status: JobStatus | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    return list(session.scalars(page)), total


def set_status(job: Job, status: JobStatus, detail: str | None = None) -> None:
    """Move a job and record the transition (with its time) in ``job_events``."""
    job.status = status
    job.updated_at = utcnow()
    if status.final:
        job.finished_at = job.updated_at
    job.events.append(JobEvent(status=status.value, detail=detail))


RESUME_REQUESTED = "resume_requested"
"""The history entry of ``POST /jobs/{id}/resume``: automatic re-queues count from there."""
REQUEUED = "re-queued"


def automatic_requeues(job: Job) -> int:
    """Times the service re-queued this job on its own since it was submitted or last resumed
    on request (what the retry limit counts)."""
    count = 0
    for event in reversed(job.events):
        if event.status == RESUME_REQUESTED:
            break
        count += event.status == JobStatus.queued.value and REQUEUED in (event.detail or "")
    return count


def request_resume(session: Session, job: Job) -> None:
    """A failed or cancelled job goes back to the queue; the reconciler resumes it from its
    checkpoints (its finished trials are kept)."""
    job.events.append(
        JobEvent(status=RESUME_REQUESTED, detail=f"resume requested ({job.status.value})")
    )
    job.cancel_requested = False
    job.error = None
    job.finished_at = None
    set_status(job, JobStatus.queued, "queued to resume from its checkpoints")
    session.commit()


def request_cancel(session: Session, job: Job) -> None:
    """A queued job is cancelled at once; a submitted or running one is stopped on Ray by the
    reconciler, which then moves it to cancelled."""
    if job.status is JobStatus.queued:
        set_status(job, JobStatus.cancelled, "cancelled before it was submitted")
    elif not job.cancel_requested:
        job.cancel_requested = True
        job.events.append(JobEvent(status="cancel_requested", detail="cancel requested"))
    session.commit()


def active_job_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Job.id).where(Job.status.in_(ACTIVE_STATUSES))))


def store_results(session: Session, job: Job, rows: list[ResultRow]) -> int:
    """Insert the results rows not stored yet; returns how many were new."""
    known = set(session.scalars(select(TrialResult.trial).where(TrialResult.job_id == job.id)))
    new = 0
    for row in rows:
        if row.trial in known:
            continue
        job.results.append(
            TrialResult(
                trial=row.trial,
                dataset=row.dataset,
                strategy=row.strategy,
                seed=row.seed,
                metric=row.metric,
                valid_mean=row.retrained.valid_mean,
                test_mean=row.retrained.test_mean,
                row=row.model_dump(mode="json"),
            )
        )
        known.add(row.trial)
        new += 1
    return new


def stored_rows(results: list[TrialResult]) -> list[ResultRow]:
    return [ResultRow.model_validate(result.row) for result in results]


class _WithoutTrajectory(FunctionElement[Any]):
    """A stored row's JSON without its weight trajectory, cut out by the database."""

    type = JSON()
    inherit_cache = True


@compiles(_WithoutTrajectory)
def _whole_row(element: _WithoutTrajectory, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_WithoutTrajectory, "sqlite")
def _sqlite_row(element: _WithoutTrajectory, compiler: Any, **kw: Any) -> str:
    return f"json_remove({compiler.process(element.clauses, **kw)}, '$.trajectory')"


@compiles(_WithoutTrajectory, "postgresql")
def _postgresql_row(element: _WithoutTrajectory, compiler: Any, **kw: Any) -> str:
    return f"(CAST({compiler.process(element.clauses, **kw)} AS JSONB) - 'trajectory')"


def rows_without_trajectories(session: Session, job_ids: list[str]) -> dict[str, list[ResultRow]]:
    """Each job's results rows, in the order stored, with empty weight trajectories: no
    statistic reads them, and they are most of a row's bytes (reading and validating rows of
    50 jobs takes seconds with them, under one without)."""
    found: dict[str, list[ResultRow]] = {job_id: [] for job_id in job_ids}
    query = select(TrialResult.job_id, _WithoutTrajectory(TrialResult.row))
    query = query.where(TrialResult.job_id.in_(job_ids)).order_by(TrialResult.id)
    for job_id, row in session.execute(query):
        found[job_id].append(ResultRow.model_validate({**row, "trajectory": []}))
    return found


def compare_results(rows: list[ResultRow], spec: ExperimentSpec) -> list[PairedDifference]:
    """The spec's reference strategy against each other one (none without a reference)."""
    if spec.reference is None:
        return []
    return paired_differences(rows, spec.reference)


def summarize_results(rows: list[ResultRow]) -> list[StrategyResult]:
    """Per dataset and strategy, the report's own summary (:func:`harness.summary.summarize`)
    with each seed's weights, scores and cost; the spread is over seeds, none with one seed."""
    summaries = []
    for dataset, per_strategy in summarize(rows).items():
        for summary in per_strategy:
            members = sorted(
                (r for r in rows if r.dataset == dataset and r.strategy == summary.strategy),
                key=lambda r: r.seed,
            )
            summaries.append(
                StrategyResult(
                    dataset=dataset,
                    strategy=summary.strategy,
                    metric=summary.metric,
                    objective_names=members[0].objective_names,
                    continued_pretraining=summary.continued_pretraining,
                    higher_is_better=HIGHER_IS_BETTER[summary.metric],
                    weights=summary.weights if summary.continued_pretraining else None,
                    test_mean=summary.test_mean,
                    test_std=summary.test_std if summary.seeds > 1 else None,
                    valid_mean=summary.valid_mean,
                    seeds=[
                        SeedScore(
                            seed=m.seed,
                            weights=m.weights,
                            valid_mean=m.retrained.valid_mean,
                            test_mean=m.retrained.test_mean,
                            cost=m.cost.model_dump(),
                        )
                        for m in members
                    ],
                )
            )
    return summaries
