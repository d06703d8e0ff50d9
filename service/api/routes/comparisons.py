"""/comparisons: several finished jobs (or every finished job of one spec) as one comparison of
strategies across datasets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from service import comparisons
from service.api.deps import OwnerDep, SessionDep
from service.schemas import Comparison, Problem

router = APIRouter(
    prefix="/comparisons",
    tags=["comparisons"],
    responses={401: {"model": Problem, "description": "missing or unknown bearer token"}},
)


@router.get(
    "",
    response_model=Comparison,
    responses={
        404: {"model": Problem, "description": "a job (or spec) this token has no job of"},
        409: {
            "model": Problem,
            "description": "a job not finished, or jobs that disagree on the reference "
            "strategy or on a dataset's metric",
        },
    },
)
def compare(
    owner: OwnerDep,
    session: SessionDep,
    job: Annotated[
        list[str] | None,
        Query(
            max_length=comparisons.MAX_COMPARED_JOBS,
            description="a finished job's id; repeat it for several jobs",
        ),
    ] = None,
    spec: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="every finished job of a spec: its name (jobs of it with other seeds "
            "add seeds) or its hash (the same spec exactly)",
        ),
    ] = None,
) -> Comparison:
    """Per dataset and strategy the mean test score over the pooled seeds with its 95%
    interval and rank, the average rank across datasets (Friedman test), and the reference
    strategy against each other one, paired by seed (win or loss only when the interval
    excludes 0). ``notes`` say what was pooled and what cannot be computed."""
    if bool(job) == (spec is not None):
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "job"),
              "msg": "give job ids (job=...&job=...) or a spec (spec=...), one of the two"}]
        )  # fmt: skip
    try:
        jobs, notes = comparisons.select_jobs(session, owner, job or [], spec)
        return comparisons.compare_jobs(session, jobs, notes)
    except comparisons.UnknownJobs as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except comparisons.NotComparable as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
