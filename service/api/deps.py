"""Request dependencies: the settings, the database and its sessions, the caller's identity.

Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in the
thread pool, and each such hop costs a request about 50 µs of CPU and, under load, a wait for
a free thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.db import Database
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.db


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.read() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
"""For a route that does all its store work in one worker thread, opening its own session."""
# Closed when the handler returns, before the response is serialized. Writes use no
# dependency: a route opens ``Database.writer()`` itself, so that its transaction starts and
# ends in one worker thread and never holds SQLite's write lock while it waits for a thread.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

bearer = HTTPBearer(auto_error=False, description="one of the tokens in TAPWEIGHT_API_TOKENS")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _owner_or_401(request: Request, token: str | None) -> str:
    owner = request.app.state.auth.owner(token)
    if owner is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return owner


async def get_owner(request: Request, credentials: Credentials) -> str:
    return _owner_or_401(request, credentials.credentials if credentials else None)


async def get_stream_owner(
    request: Request,
    credentials: Credentials,
    token: Annotated[
        str | None, Query(description="bearer token, for EventSource clients (no headers)")
    ] = None,
) -> str:
    return _owner_or_401(request, credentials.credentials if credentials else token)


OwnerDep = Annotated[str, Depends(get_owner)]
StreamOwnerDep = Annotated[str, Depends(get_stream_owner)]
