"""The in-process runner (``tapweight run --local``): same rows and report as Ray Tune, no Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.local import resume_local, run_local
from harness.rundir import RunDirectory
from harness.spec import parse_spec
from tapweight.errors import ConfigError
from tests.harness.conftest import tiny_spec, write_spec
from tests.support import cli_in_process


def test_every_cell_gets_a_protocol_row_and_grid_and_optuna_search_in_process(tmp_path):
    spec = parse_spec(
        tiny_spec(
            strategies=[
                "uniform",
                {"name": "grid", "settings": {"resolution": 1}},
                {"name": "optuna", "settings": {"n_trials": 2, "n_startup_trials": 1}},
            ],
            seeds=[0],
            budget_pretrain_steps=10,
        )
    )
    run = run_local(spec, tmp_path / "run", progress=False)
    rows = {row.strategy.split("[")[0]: row for row in run.rows()}
    assert set(rows) == {"uniform", "grid", "optuna"}
    assert rows["grid"].settings["resolution"] == 1
    assert len(rows["grid"].trajectory) == 2  # the two vertices of a 2-objective lattice
    assert len(rows["optuna"].trajectory) == 2
    for row in rows.values():
        assert row.cost.device == "cpu"
        assert "ray" not in row.versions and "ray_node" not in row.ran_on
        assert row.retrained.metric == "rmse" and row.retrained.test_mean > 0
        assert abs(sum(row.weights) - 1) < 1e-6
    assert run.status().state == "finished"
    assert (run.report_dir / "report.md").is_file()
    kinds = [event["type"] for event in run.events()]
    assert kinds.count("trial_started") == kinds.count("trial_result") == 3


def test_two_workers_share_the_run_directory_and_resume_runs_only_missing_cells(tmp_path):
    spec = parse_spec(tiny_spec(strategies=["no_cp"], seeds=[0, 1]))
    run = run_local(spec, tmp_path / "run", progress=False, workers=2)
    events = [json.loads(line) for line in run.events_file.read_text().splitlines()]
    assert sum(event["type"] == "trial_result" for event in events) == 2
    assert run.status().trials_done == 2
    kept = [row for row in run.rows() if row.seed == 0]
    run.results_file.write_text(kept[0].model_dump_json() + "\n")
    run.set_status("failed", 2, "interrupted")
    resume_local(run.path, progress=False)
    assert sorted(row.seed for row in run.rows()) == [0, 1]
    assert [len(RunDirectory(run.path).attempts(r.trial)) for r in run.rows()] == [1, 2]
    with pytest.raises(ConfigError, match="already finished"):
        resume_local(run.path, progress=False)


def test_a_gpu_the_machine_lacks_is_refused(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    spec = parse_spec(tiny_spec(resources={"cpu": 1, "gpu": 1}))
    with pytest.raises(ConfigError, match="torch sees none"):
        run_local(spec, tmp_path / "run", progress=False)
    assert RunDirectory(tmp_path / "run").status().state == "failed"


def test_cli_local_runs_without_importing_ray(tmp_path):
    spec_file = write_spec(tmp_path / "spec.yaml", tiny_spec(strategies=["no_cp"], seeds=[0]))
    out = tmp_path / "run"
    script = (
        "import sys; sys.modules['ray'] = None\n"  # any import of Ray fails
        "from tapweight.cli import main\n"
        f"sys.argv = ['tapweight', 'run', {str(spec_file)!r}, '--out', {str(out)!r}, "
        "'--local', '--no-progress']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(RunDirectory(out).rows()) == 1
    refused = cli_in_process("run", str(spec_file), "--local", "--address", "127.0.0.1:6379")
    assert refused.returncode == 2  # a usage error, printed by typer, never a traceback
    assert "--local runs without Ray" in refused.stderr
    refused = cli_in_process("run", str(spec_file), "--workers", "2")
    assert refused.returncode == 2
    assert "--workers is for --local" in refused.stderr
