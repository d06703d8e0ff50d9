"""SQLAlchemy tables: jobs, their status transitions, the per-trial results they produced, and
the datasets their owners uploaded.

API shapes live in :mod:`service.schemas`; these classes are storage only.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class JobStatus(str, enum.Enum):
    queued = "queued"  # stored, not yet handed to Ray
    submitted = "submitted"  # accepted by Ray, waiting for resources
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
ACTIVE_STATUSES = frozenset(set(JobStatus) - FINAL_STATUSES)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_job_id() -> str:
    """Job ids are random (not sequential) so that one owner cannot guess another's."""
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    """Whether ``value`` has the form of :func:`new_job_id`'s ids: anything else is no job,
    known without asking the database (PostgreSQL refuses a NUL in text outright)."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way out on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return value.astimezone(dt.timezone.utc) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Enforced by the database so that concurrent retries with one key make one job.
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    owner: Mapped[str] = mapped_column(String(64))  # sha256 of the bearer token, never the token
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus,
            native_enum=False,
            length=16,
            values_callable=lambda statuses: [s.value for s in statuses],
        ),
        default=JobStatus.queued,
    )
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    submission_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_dir: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    trials_total: Mapped[int | None] = mapped_column(Integer)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", order_by="JobEvent.id", cascade="all, delete-orphan"
    )
    results: Mapped[list[TrialResult]] = relationship(
        back_populates="job", order_by="TrialResult.id", cascade="all, delete-orphan"
    )


class JobEvent(Base):
    """One status transition (or cancel request), with when and why."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="events")


class TrialResult(Base):
    """One row of the run's ``results.jsonl``: a strategy's weights and scores for one seed."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("job_id", "trial", name="uq_results_job_trial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    trial: Mapped[str] = mapped_column(String(255))
    dataset: Mapped[str] = mapped_column(String(128))
    strategy: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str | None] = mapped_column(String(64))
    valid_mean: Mapped[float | None] = mapped_column(Float)
    test_mean: Mapped[float | None] = mapped_column(Float)
    row: Mapped[dict[str, Any]] = mapped_column(JSON)

    job: Mapped[Job] = relationship(back_populates="results")


class Dataset(Base):
    """An uploaded file: one per owner and content (the same bytes twice are one dataset)."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("owner", "sha256", name="uq_datasets_owner_sha256"),
        Index("ix_datasets_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[str]] = mapped_column(JSON)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
