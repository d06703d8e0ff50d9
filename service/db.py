"""Engine, sessions and schema migrations for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
    one_writer: AbstractContextManager[object]
    """On SQLite, held by :meth:`writer` sessions: SQLite lets one writer in and has the others
    poll with sleeps growing to 100 ms, so that under load some waited seconds while later
    ones got in; queued on a lock, the next writer starts as soon as the last one ends."""

    @classmethod
    def connect(cls, database_url: str) -> Database:
        engine = make_engine(database_url)
        writer = engine.execution_options(**{_IMMEDIATE: True})
        sqlite = engine.dialect.name == "sqlite"
        # PostgreSQL at READ COMMITTED takes a snapshot per statement even in a transaction, so
        # a read's transaction only added a BEGIN and a ROLLBACK round trip (GET /jobs/{id}
        # took 30% longer); SQLite's read transaction holds one snapshot and costs no trip.
        reader = engine if sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        return cls(
            engine,
            sessionmaker(reader, expire_on_commit=False),
            sessionmaker(writer, expire_on_commit=False),
            threading.RLock() if sqlite else nullcontext(),
        )

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """A write session, started and ended in the calling thread (one at a time in this
        process on SQLite)."""
        with self.one_writer, self.write() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write session, committed on success and rolled back on any error."""
        with self.writer() as session, session.begin():
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
