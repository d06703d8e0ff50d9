"""Alembic environment: the service passes its own connection; the alembic CLI uses
``DATABASE_URL`` (the same variable the service reads)."""

from __future__ import annotations

from alembic import context

from service.db import make_engine
from service.models import Base
from service.settings import load_settings

config = context.config


def run_migrations(connection) -> None:
    # Batch mode lets later migrations alter SQLite tables (copy-and-move).
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = make_engine(load_settings().database_url)
    with engine.begin() as connection:
        run_migrations(connection)
    engine.dispose()
