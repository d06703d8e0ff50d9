"""``tapweight serve``: the job API and dashboard (a CLI plugin, entry point group
``tapweight.toplevel``)."""

from __future__ import annotations

from typing import Annotated

import typer

from tapweight.errors import ConfigError


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Serve the job API and dashboard. Reads DATABASE_URL (default: a SQLite file here),
    RAY_ADDRESS (default: a local Ray head the service starts), TAPWEIGHT_API_TOKENS,
    TAPWEIGHT_RUNS_DIR and TAPWEIGHT_DATA_DIR."""
    import uvicorn
    from pydantic import ValidationError

    from service.main import create_app
    from service.settings import Settings

    try:
        settings = Settings.from_env()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"invalid service settings: {problems}") from None
    if not settings.api_tokens:
        raise ConfigError("TAPWEIGHT_API_TOKENS is empty: every request would be refused")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
