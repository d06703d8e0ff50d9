"""Request dependencies: the database session, the caller's identity, and the data-root check
of spec references."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
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


def _path_problem(value: str, data_root: Path | None) -> str | None:
    """Why a dataset/corpus/encoder reference may not be used, or None when it may.

    Registry keys are plain names. Anything path-like must be an absolute path that resolves
    (symlinks included) inside the data root: a relative one would resolve against the Ray
    job's working directory, and '..' is refused outright.
    """
    windows = PureWindowsPath(value)
    pathlike = "/" in value or "\\" in value or value.startswith("~") or bool(windows.drive)
    if "\x00" in value:
        return "contains a NUL byte"
    if ".." in PurePosixPath(value).parts or ".." in windows.parts:
        return "contains '..'; paths must stay inside the data root"
    if not pathlike:
        return None
    if data_root is None:
        return (
            "is a path, but the service has no data root (TAPWEIGHT_DATA_DIR); use a registry key"
        )
    path = Path(value)
    if not path.is_absolute():
        return "is a relative path; use a registry key or an absolute path inside the data root"
    if not path.resolve().is_relative_to(data_root.resolve()):
        return "resolves outside the data root"
    return None


def _references(body: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    datasets = body.get("datasets")
    if isinstance(datasets, list):
        for index, value in enumerate(datasets):
            yield ("body", "datasets", index), value
    for name in ("corpus", "encoder"):
        yield ("body", name), body.get(name)


async def check_spec_references(request: Request, settings: SettingsDep) -> None:
    """Refuse references outside the data root before the spec validators touch the file
    system (they look for an encoder folder's config.json)."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return  # FastAPI reports the malformed JSON itself
    if not isinstance(body, dict):
        return
    errors = [
        {"type": "value_error", "loc": loc, "msg": f"{value!r} {problem}", "input": value}
        for loc, value in _references(body)
        if isinstance(value, str) and (problem := _path_problem(value, settings.data_dir))
    ]
    if errors:
        raise RequestValidationError(errors)
