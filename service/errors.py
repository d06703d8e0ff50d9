"""Error responses: validation problems name the field and the reason; anything unexpected is
a plain 500 whose traceback stays in the server log."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from service import db

log = logging.getLogger(__name__)


def _problem(error: Any) -> dict[str, Any]:
    """Only type, loc and msg: the input is not echoed back. Every spec check raises at its
    own field's location, so ``loc`` names it."""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return {"type": error["type"], "loc": list(error.get("loc", ())), "msg": message}


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method some route serves on this path (Starlette names only the first route's).

    Each route is asked to match each method, since FastAPI's included routers keep no
    ``methods`` of their own; a route that matches any method is a mount of static files.
    """

    # The app's own root path: a mount (the dashboard) has moved root_path onto itself.
    top = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}

    def serves(route: BaseRoute, method: str) -> bool:
        return route.matches({**top, "method": method})[0] is Match.FULL

    methods: set[str] = set()
    for route in app.router.routes:
        if serves(route, "\x00"):
            methods |= {"GET", "HEAD"}
        else:
            methods |= {method for method in _METHODS if serves(route, method)}
    return ", ".join(sorted(methods))


def body_limit(settings: Any, scope: Scope) -> int:
    """The largest body of this request: an upload (POST /datasets) has its own limit."""
    upload = scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == "/datasets"
    return settings.max_upload_bytes if upload else settings.max_body_bytes


def body_too_large(limit: int) -> JSONResponse:
    """The one 413, whether the limit shows in Content-Length or while a chunked body is read."""
    return JSONResponse(
        {"detail": f"the request body is over the limit of {limit} bytes"}, status_code=413
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 413:
            return body_too_large(body_limit(request.app.state.settings, request.scope))
        if error.status_code == 405:
            error.headers = {**(error.headers or {}), "Allow": _allowed_methods(app, request.scope)}
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        detail = [_problem(item) for item in error.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
        return JSONResponse(
            {"detail": "the database is unavailable or busy; retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for unavailable in db.UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
