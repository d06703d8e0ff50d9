"""Jobs executed on real Ray through the harness, with the faults the service must survive:
the API process killed mid-job (three times), a trial's worker killed, the driver killed, and
Ray losing the job altogether. Each prints what it measured (attempts, time to recover)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.rundir import RunDirectory
from service.ray_head import stop_ray_head
from service.ray_jobs import use_ray_token_auth_like_ray_start
from tests.service.conftest import (
    ALICE,
    ARTIFACTS,
    Server,
    requested_hosts,
    tiny_spec,
    wait_for,
)

pytestmark = pytest.mark.slow

FINAL = {"succeeded", "failed", "cancelled"}


def final(server: Server, job_id: str, timeout: float = 300) -> dict:
    return wait_for(
        lambda: (job := server.job(job_id))["status"] in FINAL and job,
        timeout,
        f"job {job_id} to finish",
        every=1,
    )


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kinds(run_dir: Path) -> list[str]:
    return [event["type"] for event in events(run_dir)]


@pytest.fixture(scope="module")
def crashed_service(ray_cluster: str, tmp_path_factory) -> Iterator[tuple[Server, dict]]:
    """Jobs on a Ray cluster; the service is SIGKILLed three times while one runs, restarted
    each time; another is cancelled while it runs. Yields the restarted service and the ids."""
    tmp = tmp_path_factory.mktemp("crash")
    server = Server.create(f"sqlite:///{tmp / 'service.db'}", tmp / "runs", RAY_ADDRESS=ray_cluster)
    try:
        server.start()
        jobs = {
            "a": server.submit(tiny_spec(name="crash-a", reference_strategy="uniform")),
            # A valid spec that no node of the 2-CPU test cluster can run.
            "too_big": server.submit(tiny_spec(name="too-big", resources={"cpu": 64})),
        }
        run_a = tmp / "runs" / jobs["a"]
        wait_for(lambda: "trial_started" in kinds(run_a), 300, "a trial of job a to start")
        for crash in range(3):  # SIGKILL mid-job, three times; each restart re-attaches
            began = time.monotonic()
            server.kill()
            server.start()
            job = server.job(jobs["a"])
            print(f"\ncrash {crash + 1}: back in {time.monotonic() - began:.1f} s, job a "
                  f"{job['status']}, {job['trials_done']} trial(s) done")  # fmt: skip
        jobs["cancelled"] = server.submit(tiny_spec(name="cancel-me", seeds=[2]))
        wait_for(lambda: server.job(jobs["cancelled"])["status"] == "running", 300, "it to run")
        cancel = httpx.post(f"{server.url}/jobs/{jobs['cancelled']}/cancel", headers=ALICE)
        assert cancel.status_code == 202 and cancel.json()["cancel_requested"]
        for job_id in jobs.values():
            final(server, job_id)
        yield server, jobs
    finally:
        server.stop()


def test_jobs_survive_a_service_crash_and_all_reach_a_final_state(crashed_service):
    server, jobs = crashed_service
    listed = httpx.get(f"{server.url}/jobs", headers=ALICE).json()
    assert {job["id"] for job in listed["items"]} == set(jobs.values())
    job = server.job(jobs["a"])
    assert job["status"] == "succeeded", job
    # Re-attached after the restart: the same Ray job, never submitted twice.
    assert job["attempts"] == 1
    assert [h["status"] for h in job["history"]] == [
        "queued",
        "submitted",
        "running",
        "succeeded",
    ]
    assert {s["strategy"] for s in job["results"]} == {"uniform", "no_cp"}
    uniform = next(s for s in job["results"] if s["strategy"] == "uniform")
    assert uniform["weights"] == [0.5, 0.5] and uniform["metric"] == "rmse"
    assert uniform["seeds"][0]["test_mean"] > 0 and uniform["seeds"][0]["cost"]["passes"]
    assert all(t["state"] == "done" for t in job["progress"]) and job["trials_done"] == 2
    report = httpx.get(f"{server.url}/jobs/{jobs['a']}/report", headers=ALICE)
    assert report.status_code == 200 and "uniform" in report.text
    figure = httpx.get(f"{server.url}/jobs/{jobs['a']}/figures/scores.png", headers=ALICE)
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    too_big = server.job(jobs["too_big"])  # refused by the harness: its message, no trace
    assert too_big["status"] == "failed" and too_big["attempts"] == 1
    assert "resources.cpu" in too_big["error"] and "the cluster has 2" in too_big["error"]
    assert "Traceback" not in too_big["error"] and too_big["history"][-1]["status"] == "failed"
    cancelled = server.job(jobs["cancelled"])
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert "cancel_requested" in [h["status"] for h in cancelled["history"]]


def test_the_event_stream_replays_a_finished_job_and_ends(crashed_service):
    server, jobs = crashed_service
    streamed = []
    with httpx.stream(
        "GET", f"{server.url}/jobs/{jobs['a']}/events", params={"token": "token-alice"}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                streamed.append(line.removeprefix("event: "))
    assert streamed[0] == "status" and streamed[-1] == "end"
    assert "experiment_started" in streamed and streamed.count("trial_result") == 2
    assert "experiment_finished" in streamed


def test_dashboard_shows_the_strategies_of_a_finished_job(crashed_service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, jobs = crashed_service
    browser.get(f"{server.url}/dashboard/#job={jobs['a']}")
    browser.find_element(By.ID, "token").send_keys("token-alice")
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")) == len(jobs))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#chart-scores .category"))
    scored = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#chart-scores .category")]
    assert {name.removeprefix("★ ") for name in scored} == {"uniform", "no_cp"}
    assert sum(name.startswith("★ ") for name in scored) == 1  # the best one, marked
    axis = browser.find_element(By.CSS_SELECTOR, "#chart-scores .axis-label").text
    assert axis == "test rmse (lower is better)"
    assert browser.find_element(By.ID, "job-status").text == "succeeded"
    weights = browser.find_elements(By.CSS_SELECTOR, "#chart-weights .category")
    assert [e.text for e in weights] == ["uniform"]  # no_cp trains no weights
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-cost circle")) == 2
    trials = browser.find_elements(By.CSS_SELECTOR, "#trials tbody tr")
    assert len(trials) == 2 and all("done" in row.text for row in trials)
    no_cp = next(row for row in trials if "no_cp" in row.text)
    assert "0.50" not in no_cp.text  # no weights shown for a strategy that uses none
    (pair,) = browser.find_elements(By.CSS_SELECTOR, "#comparison tbody tr")
    assert "no_cp" in pair.text and "too few seeds" in pair.text  # one seed: no verdict
    assert (
        "uniform against each other strategy"
        in browser.find_element(By.ID, "comparison-caption").text
    )
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1400, 700):  # no horizontal scroll at 1400 px; usable at 700 px
        browser.set_window_size(width, 1000)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0 or width < 1400, f"{overflow} px of horizontal scroll at {width}"
        browser.save_screenshot(str(ARTIFACTS / f"dashboard-{width}.png"))
    browser.find_element(By.ID, "report-link").click()
    wait.until(lambda b: b.find_element(By.ID, "report").is_displayed())
    browser.get(f"{server.url}/dashboard/#job={jobs['too_big']}")
    wait.until(lambda b: b.find_element(By.ID, "job-status").text == "failed")
    assert not browser.find_element(By.ID, "report").is_displayed()  # not job a's report
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert requested_hosts(browser) == {"127.0.0.1"}  # works without internet
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")


def test_a_killed_trial_worker_is_retried_not_a_failed_job(ray_cluster, serve, tmp_path):
    from ray.util.state import list_actors

    server = serve(f"sqlite:///{tmp_path / 'service.db'}", RAY_ADDRESS=ray_cluster)
    spec = tiny_spec(
        name="kill-worker",
        strategies=["uniform"],
        budget_pretrain_steps=300,
        protocol={
            "pretrain": {"steps": 300, "batch_size": 32},
            "finetune": {"epochs": 1, "max_steps_per_epoch": 5},
        },
    )
    job_id = server.submit(spec)
    run_dir = tmp_path / "runs" / job_id
    wait_for(
        lambda: events(run_dir) and events(run_dir)[-1]["type"] == "trial_started", 180, "start"
    )
    use_ray_token_auth_like_ray_start()
    trial_actors = wait_for(
        lambda: [
            a
            for a in list_actors(address=ray_cluster, filters=[("state", "=", "ALIVE")])
            if a.class_name == "ImplicitFunc"
        ],
        60,
        "the trial's actor",
    )
    os.kill(trial_actors[0].pid, signal.SIGKILL)
    job = final(server, job_id)
    assert job["status"] == "succeeded", job
    seen = kinds(run_dir)
    assert "trial_retry" in seen and "trial_error" not in seen
    assert seen.count("trial_result") == 1 and job["progress"][0]["retries"] >= 1
    assert job["attempts"] == 1  # Tune retried the trial inside the same Ray job


def _driver_of(run_dir: Path) -> int:
    """The pid of the `tapweight run|resume` process writing ``run_dir`` (not its shell)."""
    import psutil

    for process in psutil.process_iter(["pid", "cmdline"]):
        line = process.info["cmdline"] or []
        if line and Path(line[0]).name != "sh" and str(run_dir) in " ".join(line):
            if any(Path(part).name == "tapweight" for part in line[:2]):
                return process.info["pid"]
    raise AssertionError(f"no driver process for {run_dir}")


def test_a_killed_driver_is_resumed_from_its_checkpoints(ray_cluster, serve, tmp_path):
    """kill -9 of the `tapweight run` driver mid-run: an infrastructure failure, so the service
    resubmits `tapweight resume`; the trial that had finished is kept, not trained again. (The
    same path as a user's `tapweight resume` after a killed run, which this test stands for.)"""
    server = serve(f"sqlite:///{tmp_path / 'service.db'}", RAY_ADDRESS=ray_cluster)
    job_id = server.submit(
        tiny_spec(name="kill-driver", seeds=[0], tune={"max_concurrent_trials": 1})
    )
    run = RunDirectory(tmp_path / "runs" / job_id)
    first = wait_for(lambda: run.rows(), 300, "a first finished trial")[0]
    os.kill(_driver_of(run.path), signal.SIGKILL)
    killed = time.monotonic()
    finished = {r.trial for r in run.rows()}
    assert finished == {first.trial}  # killed mid-run, with one of its two trials left
    assert run.status().state == "running"  # what a killed run leaves behind
    job = final(server, job_id, timeout=400)
    recovered = time.monotonic() - killed
    assert job["status"] == "succeeded", job
    details = [h["detail"] for h in job["history"]]
    assert any(d.startswith("the driver was killed (exit code") for d in details), details
    assert job["attempts"] == 2 and job["trials_done"] == 2
    rows = run.rows()
    assert len(rows) == 2 and len({r.trial for r in rows}) == 2 and rows[0] == first
    for key in finished:  # a trial Tune had not yet marked finished replays its stored row
        trained = [a for a in run.attempts(key) if not a.endswith("replayed finished result")]
        assert len(trained) == 1, f"{key} trained again: {run.attempts(key)}"
    assert sum(len(run.attempts(r.trial)) for r in rows) >= 2
    assert run.status().state == "finished"
    started = [e for e in run.events() if e["type"] == "experiment_started"]
    assert [e["resumed"] for e in started] == [False, True]
    assert all(t["state"] == "done" for t in job["progress"])
    print(f"\nkilled driver: {job['attempts']} attempts, finished {recovered:.0f} s after the kill")


def test_a_job_ray_lost_is_resumed_from_its_checkpoints(serve, tmp_path):
    server = serve(f"sqlite:///{tmp_path / 'service.db'}")  # no RAY_ADDRESS: its own head
    runs = tmp_path / "runs"
    head = runs / ".ray-head.json"
    try:
        # Two trials, one at a time: the loss comes between them.
        job_id = server.submit(
            tiny_spec(name="ray-lost", seeds=[0], tune={"max_concurrent_trials": 1})
        )
        run = RunDirectory(runs / job_id)
        first = wait_for(lambda: run.rows(), 300, "a first finished trial")[0]
        # Lose everything: the API process and the whole Ray head with the job on it.
        server.kill()
        os.killpg(json.loads(head.read_text())["pid"], signal.SIGKILL)
        server.start()
        job = final(server, job_id, timeout=400)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2 and job["trials_done"] == 2
        details = [h["detail"] for h in job["history"]]
        assert any("re-queued" in d for d in details)
        assert any(d.startswith("resumed from its checkpoints") for d in details)
        assert any(e["type"] == "experiment_started" and e["resumed"] for e in events(run.path))
        rows = run.rows()  # each trial once; the one finished before the loss is kept as it was
        assert len(rows) == 2 and len({r.trial for r in rows}) == 2 and rows[0] == first
        trained = [a for a in run.attempts(first.trial) if "replayed" not in a]
        assert len(trained) == 1, run.attempts(first.trial)  # never trained twice
        stored = httpx.get(f"{server.url}/jobs/{job_id}/results", headers=ALICE).json()
        assert sorted(r["trial"] for r in stored) == sorted(r.trial for r in rows)
    finally:
        server.stop()
        if head.exists():
            stop_ray_head(json.loads(head.read_text())["pid"])
