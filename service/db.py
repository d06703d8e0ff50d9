"""Engine, sessions and schema migrations for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_INI = Path(__file__).with_name("alembic.ini")

UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, PoolTimeout)
"""What a database that is down, restarting or too busy raises (a refused connection, a
session ended by a shutdown, no pooled connection free in time): a request answers 503 and
the reconciler tries again on its next pass."""


def make_engine(database_url: str) -> Engine:
    """An engine that behaves under concurrent writers on either backend.

    The pool is larger than the request thread pool (40), so that a request never waits for a
    connection held by another request that is itself waiting for a thread to finish.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)
    engine = create_engine(
        url, pool_size=10, max_overflow=40, connect_args={"check_same_thread": False, "timeout": 30}
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below) instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # A deferred transaction that reads, then writes, fails with SQLITE_BUSY when another
        # writer committed in between, whatever the busy timeout; IMMEDIATE takes the write
        # lock up front (waiting for it). Reads stay deferred, so they never queue for it.
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_IMMEDIATE = "tapweight_sqlite_immediate"


@dataclass(frozen=True)
class Database:
    """An engine with two kinds of session: ``read`` for lookups, ``write`` for transactions
    that read and then change rows (on SQLite they take the write lock first)."""

    engine: Engine
    read: sessionmaker[Session]
    write: sessionmaker[Session]

    @classmethod
    def connect(cls, database_url: str) -> Database:
        engine = make_engine(database_url)
        writer = engine.execution_options(**{_IMMEDIATE: True})
        return cls(
            engine,
            sessionmaker(engine, expire_on_commit=False),
            sessionmaker(writer, expire_on_commit=False),
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write session, committed on success and rolled back on any error."""
        with self.write() as session, session.begin():
            yield session


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (run at every start-up)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(MIGRATIONS_INI))
    config.set_main_option("script_location", str(MIGRATIONS_INI.with_name("migrations")))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
