"""``tapweight serve``: the job API and dashboard (a CLI plugin, entry point group
``tapweight.toplevel``)."""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from tapweight.errors import ConfigError


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Serve the job API and dashboard. Settings come from the environment or a .env file
    (DATABASE_URL, RAY_ADDRESS, TAPWEIGHT_API_TOKENS, ...; see the README's table); a bad value
    stops start-up with one line naming the variable."""
    import uvicorn

    from service.main import create_app
    from service.settings import load_settings

    settings = load_settings()
    if not settings.api_tokens:
        raise ConfigError(
            "TAPWEIGHT_API_TOKENS (or TAPWEIGHT_API_TOKENS_FILE) is empty: every request would be "
            "refused"
        )
    app = create_app(settings)
    # The app imports torch and more through the harness (half a million objects): frozen, a
    # full garbage collection no longer walks them, which stalled every request for ~0.4 s.
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
