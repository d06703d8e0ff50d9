"""/jobs: submit, list, inspect, cancel, stream and report experiment jobs."""

from __future__ import annotations

from pathlib import Path as PathType
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse

from harness.artifact import recommended_artifacts
from harness.row import ResultRow
from harness.rundir import RunDirectory
from harness.spec import ExperimentSpec, parse_spec
from service import crud
from service.api import links
from service.api.deps import DatabaseDep, OwnerDep, SessionDep, SettingsDep, StreamOwnerDep
from service.api.event_stream import EVENT, follow
from service.api.spec_body import ACCEPTED, OPENAPI_BODY, SpecBody
from service.db import Database
from service.models import Job, JobStatus, is_job_id
from service.runs import ProgressReader, settled
from service.schemas import (
    ArtifactList,
    ArtifactPublic,
    JobAccepted,
    JobDetail,
    JobPage,
    JobSummary,
    Problem,
    StatusChange,
)

router = APIRouter(
    prefix="/jobs",
    tags=["jobs"],
    responses={401: {"model": Problem, "description": "missing or unknown bearer token"}},
)

Responses = dict[int | str, dict[str, Any]]  # the type FastAPI's `responses=` takes
NOT_FOUND: Responses = {404: {"model": Problem, "description": "no such job for this token"}}
NO_REPORT: Responses = {
    409: {"model": Problem, "description": "the job has no report: its run has not ended"}
}
REPORT_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _written(job: Job, path: PathType | None, what: str) -> PathType:
    """``path`` once the run wrote it. Until the run has written its report (it does when it
    ends), the job's state is why there is none: 409 with that state; 404 is for a part that a
    written report does not have."""
    if path is not None:
        return path
    if RunDirectory(job.run_dir).report_file("md") is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {job.id} is {job.status.value} and has no report: its run writes one when it "
            "ends",
        )
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job.id} has no {what}")


def _job_or_404(session: Session, owner: str, job_id: str) -> Job:
    job = crud.get_job(session, owner, job_id) if is_job_id(job_id) else None
    if job is None:
        shown = job_id if len(job_id) <= 40 else f"{job_id[:40]}…"
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {shown!r}")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        202: {"links": links.SUBMITTED_JOB},
        409: {"model": Problem, "description": "Idempotency-Key reused for another spec"},
        413: {"model": Problem, "description": "body over the size limit"},
        415: {"model": Problem, "description": f"a body that is not {ACCEPTED}"},
    },
    openapi_extra=OPENAPI_BODY,
)
async def submit_job(
    owner: OwnerDep,
    spec: SpecBody,
    database: DatabaseDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="retries with the same key return the first job instead of a new one",
        ),
    ] = None,
) -> JobAccepted:
    """Queue an experiment (the harness spec, as JSON or YAML); it runs through the harness as
    a Ray job."""
    try:
        accepted = await run_in_threadpool(
            _store_job, database, owner, spec, idempotency_key, settings.runs_dir
        )
    except crud.IdempotencyConflict:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this Idempotency-Key was used for a different spec"
        ) from None
    response.headers["Location"] = f"/jobs/{accepted.id}"
    return accepted


def _store_job(
    database: Database, owner: str, spec: ExperimentSpec, key: str | None, runs_dir: PathType
) -> JobAccepted:
    """The store's part of a submission, in one worker thread: its transaction starts and
    ends there, so that it never waits for a thread while it holds SQLite's write lock."""
    with database.writer() as session:
        job, created = crud.create_job(session, owner, spec, key, runs_dir)
        return JobAccepted(id=job.id, status=job.status, created=created)


@router.get("", response_model=JobPage, responses={200: {"links": links.LISTED_JOB}})
def list_jobs(
    owner: OwnerDep,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JobPage:
    """This token's jobs, newest first."""
    jobs, total = crud.list_jobs(session, owner, status_filter, limit, offset)
    return JobPage(
        items=[JobSummary.model_validate(job) for job in jobs],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
async def get_job(
    job_id: str, owner: OwnerDep, database: DatabaseDep, request: Request
) -> JobDetail:
    """Status and history; progress per trial while it runs; weights and scores per strategy
    (and per seed) as trials finish."""
    progress = request.app.state.progress
    return await run_in_threadpool(_job_detail, database, progress, owner, job_id)


def _job_detail(database: Database, progress: ProgressReader, owner: str, job_id: str) -> JobDetail:
    """A job's detail from the store and its run directory, in one worker thread."""
    with database.read() as session:
        job = _job_or_404(session, owner, job_id)
        run = RunDirectory(job.run_dir)
        rows = crud.stored_rows(job.results)  # validated once for the summary and the comparison
        # The stored spec is checked again only for its reference strategy, which only rows use.
        spec = parse_spec(job.spec, inspect_files=False) if rows else None
        return JobDetail(
            **JobSummary.model_validate(job).model_dump(exclude={"links"}),
            spec=job.spec,
            history=[StatusChange(status=e.status, detail=e.detail, at=e.at) for e in job.events],
            progress=settled(progress.trials(run), job.status.final),
            results=crud.summarize_results(rows),
            comparison=crud.compare_results(rows, spec) if spec is not None else [],
            recommended_artifacts=recommended_artifacts(run.artifacts()),
        )


@router.get("/{job_id}/results", response_model=list[ResultRow], responses=NOT_FOUND)
def get_results(job_id: str, owner: OwnerDep, session: SessionDep) -> list[ResultRow]:
    """Every finished trial's full results row (with its weight trajectory)."""
    job = _job_or_404(session, owner, job_id)
    return crud.stored_rows(job.results)


@router.get(
    "/{job_id}/artifacts",
    response_model=ArtifactList,
    responses={**NOT_FOUND, 200: {"links": links.LISTED_ARTIFACT}},
)
def list_artifacts(job_id: str, owner: OwnerDep, session: SessionDep) -> ArtifactList:
    """Each finished trial's continued-pretrained encoder and learned weights; ``recommended``
    names, per dataset, the one with the best validation score."""
    job = _job_or_404(session, owner, job_id)
    found = RunDirectory(job.run_dir).artifacts()
    best = recommended_artifacts(found)
    items = [
        ArtifactPublic(
            **item.model_dump(),
            recommended=best.get(item.dataset) == item.id,
            download=f"/jobs/{job.id}/artifacts/{item.id}",
        )
        for item in found
    ]
    return ArtifactList(items=items, recommended=best)


@router.get(
    "/{job_id}/artifacts/{artifact_id}",
    responses={
        **NOT_FOUND,
        200: {
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the artifact's folder as .tar.gz: molecules encoder.pt + "
            "encoder.json, text a save_pretrained folder; artifact.json says what it is",
        },
    },
    response_class=Response,
)
def download_artifact(
    job_id: str,
    artifact_id: Annotated[str, Path(max_length=300)],
    owner: OwnerDep,
    session: SessionDep,
) -> Response:
    """One trial's artifact, for `tapweight finetune --encoder` (molecules) or
    ``AutoModel.from_pretrained`` (text) once unpacked."""
    job = _job_or_404(session, owner, job_id)
    archive = RunDirectory(job.run_dir).artifact_archive(artifact_id)
    if archive is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"job {job_id} has no artifact {artifact_id[:80]!r}"
        )
    return FileResponse(archive, media_type="application/gzip", filename=archive.name)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobSummary,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "the job already finished"}},
)
def cancel_job(job_id: str, owner: OwnerDep, database: DatabaseDep) -> JobSummary:
    """Cancel a queued job at once, or ask Ray to stop a running one."""
    with database.writer() as session:
        job = _job_or_404(session, owner, job_id)
        if job.status.final:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"job {job_id} already {job.status.value}"
            )
        crud.request_cancel(session, job)
        return JobSummary.model_validate(job)


@router.post(
    "/{job_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobSummary,
    responses={
        **NOT_FOUND,
        409: {"model": Problem, "description": "the job is not failed or cancelled"},
    },
)
def resume_job(job_id: str, owner: OwnerDep, database: DatabaseDep) -> JobSummary:
    """Resume a failed or cancelled job from its checkpoints; finished trials are kept."""
    with database.writer() as session:
        job = _job_or_404(session, owner, job_id)
        if job.status not in (JobStatus.failed, JobStatus.cancelled):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"job {job_id} is {job.status.value}; only a failed or cancelled job can be "
                "resumed",
            )
        crud.request_resume(session, job)
        return JobSummary.model_validate(job)


@router.get(
    "/{job_id}/report",
    responses={
        **NOT_FOUND,
        **NO_REPORT,
        200: {
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
            "description": "the report",
        },
    },
    response_class=Response,  # errors stay JSON; the 200 content is declared above
)
def get_report(
    job_id: str,
    owner: OwnerDep,
    session: SessionDep,
    format: Literal["html", "md"] = "html",
) -> Response:
    """The harness report (written when the run ends)."""
    job = _job_or_404(session, owner, job_id)
    path = _written(job, RunDirectory(job.run_dir).report_file(format), f"{format} report")
    if format == "md":
        return PlainTextResponse(path.read_text(), media_type="text/markdown")
    return HTMLResponse(path.read_text(), headers={"Content-Security-Policy": REPORT_POLICY})


@router.get(
    "/{job_id}/figures/{name}",
    responses={
        **NOT_FOUND,
        **NO_REPORT,
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "a figure",
        },
    },
    response_class=Response,
)
def get_figure(
    job_id: str,
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}\.png$")],
    owner: OwnerDep,
    session: SessionDep,
) -> Response:
    """A figure of the report (the report's HTML links them as ``figures/<name>.png``)."""
    job = _job_or_404(session, owner, job_id)
    path = _written(job, RunDirectory(job.run_dir).figure_file(name), f"figure {name!r}")
    return FileResponse(path, media_type="image/png")


@router.get(
    "/{job_id}/events",
    responses={
        **NOT_FOUND,
        200: {
            "content": {"text/event-stream": {"itemSchema": EVENT}},
            "description": "the run's events.jsonl as server-sent events; ends with the job",
        },
    },
    response_class=Response,
)
async def stream_events(
    job_id: str,
    owner: StreamOwnerDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    """Progress, λ updates and trial results as the run writes them; a final ``end`` event
    carries the job's status. ``Last-Event-ID`` resumes after the last event received."""
    sessions = request.app.state.db.read
    run = await run_in_threadpool(_owned_run, sessions, owner, job_id)
    offset = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    poll = request.app.state.settings.poll_interval_s
    return EventSourceResponse(follow(sessions, job_id, run, offset, poll), ping=15)


def _owned_run(sessions: sessionmaker[Session], owner: str, job_id: str) -> RunDirectory:
    with sessions() as session:
        return RunDirectory(_job_or_404(session, owner, job_id).run_dir)
