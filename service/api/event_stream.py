"""The event stream of a job (``GET /jobs/{id}/events``): its events as the OpenAPI document
declares them, and the generator that follows the run's events.jsonl until the job ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, get_args

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from harness.rundir import EventType, RunDirectory
from service.db import UNAVAILABLE
from service.models import Job, JobStatus

# One server-sent event, as OpenAPI 3.2 describes them (`itemSchema` of text/event-stream):
# ``status`` first and ``end`` last carry the job's status, the others are the run's events.
EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["status", "end", *get_args(EventType)]},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "a run event's offset, to send back as Last-Event-ID",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"enum": [s.value for s in JobStatus]}},
                    },
                    {
                        "type": "object",
                        "required": ["type", "time"],
                        "properties": {
                            "type": {"enum": list(get_args(EventType))},
                            "time": {"type": "string", "format": "date-time"},
                            "trial": {"type": "string"},
                        },
                    },
                ]
            },
        },
    },
}


def _job_status(
    sessions: sessionmaker[Session], job_id: str, known: JobStatus | None
) -> JobStatus | None:
    """The job's status; ``known``, the last one read, while the database cannot be reached
    (the stream goes on with the run's file and asks again on the next poll)."""
    try:
        with sessions() as session:
            job = session.get(Job, job_id)
            return job.status if job is not None else JobStatus.cancelled
    except UNAVAILABLE:
        return known


def _events_from(run: RunDirectory, offset: int) -> list[tuple[int, dict[str, Any]]]:
    return list(run.events_from(offset))


async def follow(
    sessions: sessionmaker[Session], job_id: str, run: RunDirectory, offset: int, poll: float
) -> AsyncIterator[dict[str, str]]:
    """The job's ``status``, then each run event from ``offset`` as the run appends it, and
    ``end`` once the job is final."""
    last_status = None
    while True:
        # Read the status before the file: once final, the file is complete.
        current = await run_in_threadpool(_job_status, sessions, job_id, last_status)
        if current is not None and current != last_status:
            last_status = current
            yield {"event": "status", "data": json.dumps({"status": current.value})}
        lines = await run_in_threadpool(_events_from, run, offset)
        for offset, event in lines:
            yield {
                "id": str(offset),
                "event": str(event.get("type", "message")),
                "data": json.dumps(event),
            }
        if current is not None and current.final:
            yield {"event": "end", "data": json.dumps({"status": current.value})}
            return
        await asyncio.sleep(poll)
