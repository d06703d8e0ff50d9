"""/health: liveness of the API, its database and (when executing) the Ray cluster."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(request: Request, response: Response) -> Health:
    """Open (no token): 503 when the database cannot be reached."""
    state = request.app.state
    try:
        with state.db.read() as session:
            session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError:
        database = "unreachable"
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    ray = None
    if state.reconciler is not None:
        reachable = state.reconciler.ray_reachable
        ray = "unknown" if reachable is None else "reachable" if reachable else "unreachable"
    return Health(
        status="ok" if database == "ok" and ray != "unreachable" else "degraded",
        database=database,
        executor=state.settings.executor,
        ray=ray,
    )
