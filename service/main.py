"""The FastAPI application: routes, dashboard, error handling, and the reconciler's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.main import api_router
from service.api.spec_body import spec_schemas
from service.auth import TokenAuth
from service.db import Database, upgrade
from service.errors import body_limit, body_too_large, install_error_handlers
from service.ray_jobs import RayJobsClient
from service.reconciler import Reconciler
from service.runs import ProgressReader
from service.settings import Settings, load_settings

STATIC_DIR = Path(__file__).with_name("static")
DASHBOARD_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class SecurityHeaders:
    """nosniff everywhere; a same-origin-only policy on the dashboard (pure ASGI, so that
    event streams pass through unbuffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dashboard = scope["path"].startswith("/dashboard")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if dashboard:
                    headers["Content-Security-Policy"] = DASHBOARD_POLICY
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """The largest request body (an upload's own limit for POST /datasets), answered with one
    JSON 413: at once when Content-Length is
    over the limit, else as soon as the body read so far is. (Starlette's limiter, behind
    FastAPI's ``max_body_size``, answers the first case in text/plain.)"""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await body_too_large(limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413)  # our handler answers it with body_too_large
            return message

        await self.app(scope, counted, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # anyio's 40 threads made POST /jobs spend ~40% of its CPU contending for the GIL.
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        database = Database.connect(settings.database_url)
        upgrade(database.engine)
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        app.state.db = database
        app.state.reconciler = None
        if settings.executor == "ray":
            app.state.reconciler = Reconciler(database, settings, RayJobsClient(settings))
            app.state.reconciler.start()
        try:
            yield
        finally:
            if app.state.reconciler is not None:
                app.state.reconciler.stop()
            database.engine.dispose()

    # /docs and /redoc with Swagger UI and ReDoc from the installed package: no CDN, so the
    # docs render on a network without internet.
    app = FastAPIOffline(
        title="TapWeight Harness service",
        summary="Submit experiment specs, follow them on Ray, compare weighting strategies.",
        version="0.1.0",
        lifespan=lifespan,
        # operationIds are the handlers' names (`get_job`), which the OpenAPI links name
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.auth = TokenAuth(settings.api_tokens)
    app.state.progress = ProgressReader()
    app.include_router(api_router)
    app.mount("/dashboard", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")

    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:  # off unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        )

    install_error_handlers(app)
    _document_spec_schemas(app)
    return app


def _document_spec_schemas(app: FastAPI) -> None:
    """POST /jobs reads its body itself, so FastAPI does not collect the spec's schemas: add
    them to the components that the route's documented body refers to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # FastAPI keeps it as app.openapi_schema: this runs once
        schema.setdefault("components", {}).setdefault("schemas", {}).update(spec_schemas())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
