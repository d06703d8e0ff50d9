"""What a request costs the API process beyond its own work: hand-offs to worker threads, the
size of the thread pool, and how SQLite writers wait for each other (bench/service_load.py
measures the latency these decide under 50 clients)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from service.db import Database, upgrade
from service.main import create_app
from tests.service.conftest import ALICE, settings_for, tiny_spec


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of each function the app hands to a worker thread, in order."""
    handed: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function, *args, **kwargs):
        called = getattr(function, "func", function)  # run_in_threadpool passes a partial
        handed.append(getattr(called, "__name__", repr(called)))
        return await run_sync(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    yield handed


def test_a_submission_and_a_job_read_take_one_worker_thread_hop_each_step(
    sqlite_client: TestClient, thread_hops: list[str]
):
    # Each hop costs ~50 µs of CPU and, under load, a wait for a thread: the spec is checked
    # in one, the job stored in another, and a job is read in one.
    submitted = sqlite_client.post("/jobs", json=tiny_spec(), headers=ALICE)
    assert submitted.status_code == 202, submitted.text
    assert thread_hops == ["_checked_spec", "_store_job"]
    thread_hops.clear()
    read = sqlite_client.get(f"/jobs/{submitted.json()['id']}", headers=ALICE)
    assert read.status_code == 200 and read.json()["status"] == "queued"
    assert thread_hops == ["_job_detail"]


def test_the_thread_pool_has_the_configured_size(tmp_path: Path):
    settings = settings_for(f"sqlite:///{tmp_path / 'service.db'}", tmp_path, worker_threads=3)
    with TestClient(create_app(settings)) as client:
        limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
        assert limiter.total_tokens == 3


@pytest.mark.parametrize(("backend", "queued"), [("sqlite", True), ("postgresql", False)])
def test_sqlite_writers_queue_in_the_process_and_postgresql_writers_do_not(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, queued: bool
):
    """SQLite admits one writer and has the others poll with sleeps of up to 100 ms; queued on
    a lock instead, the second writer starts as soon as the first ends."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = f"{server}/postgres"
    database = Database.connect(url)
    upgrade(database.engine)
    first_in, release = threading.Event(), threading.Event()
    second_in = threading.Event()

    def first() -> None:
        with database.writer():
            first_in.set()
            release.wait(10)

    def second() -> None:
        with database.writer():
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_in.wait(10)
    threads[1].start()
    assert second_in.wait(0.5) is not queued
    release.set()
    began = time.monotonic()
    assert second_in.wait(10)
    assert time.monotonic() - began < 0.5
    for thread in threads:
        thread.join(10)
    database.engine.dispose()


def test_postgresql_reads_take_no_transaction_and_sqlite_reads_keep_one_snapshot(
    request: pytest.FixtureRequest, tmp_path: Path
):
    """At READ COMMITTED each statement has its own snapshot anyway, so on PostgreSQL a read's
    BEGIN and ROLLBACK were two round trips for nothing; SQLite's read transaction is what
    holds one snapshot across a request's queries, and costs no round trip."""
    import psycopg.pq

    server = request.getfixturevalue("postgres_server")
    for url, in_transaction in (
        (f"{server}/postgres", False),
        (f"sqlite:///{tmp_path / 'service.db'}", True),
    ):
        database = Database.connect(url)
        upgrade(database.engine)
        with database.read() as session:
            session.execute(text("SELECT 1"))
            driver = session.connection().connection.driver_connection
            if isinstance(driver, psycopg.Connection):
                opened = driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            else:
                opened = driver.in_transaction
            assert opened is in_transaction, url
        database.engine.dispose()
