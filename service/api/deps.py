"""Request dependencies: the settings, the database session and the caller's identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.read() as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.write() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
# Closed when the handler returns, before the response is serialized: on SQLite an open write
# transaction would otherwise hold the lock while serialization waits for a worker thread
# that requests queued behind the lock are all holding.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]

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


def get_owner(request: Request, credentials: Credentials) -> str:
    return _owner_or_401(request, credentials.credentials if credentials else None)


def get_stream_owner(
    request: Request,
    credentials: Credentials,
    token: Annotated[
        str | None, Query(description="bearer token, for EventSource clients (no headers)")
    ] = None,
) -> str:
    return _owner_or_401(request, credentials.credentials if credentials else token)


OwnerDep = Annotated[str, Depends(get_owner)]
StreamOwnerDep = Annotated[str, Depends(get_stream_owner)]
