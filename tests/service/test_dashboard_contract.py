"""The dashboard reads only fields the API's schemas promise: results rows against the exported
row schema (harness/row.schema.json), everything else (a job's detail, GET /comparisons)
against the OpenAPI document. A field renamed on one side and not the other fails here, not in
a user's browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.row import ROW_SCHEMA_PATH

APP = Path(__file__).resolve().parents[2] / "service" / "static" / "app.js"


def _fields(variable: str) -> set[str]:
    """Every ``<variable>.<field>`` the dashboard reads."""
    return set(re.findall(rf"\b{variable}\.(\w+)", APP.read_text()))


def _properties(schema: dict, name: str) -> set[str]:
    definitions = schema.get("$defs", {}) | schema.get("components", {}).get("schemas", {})
    return set((schema if name == "" else definitions[name])["properties"])


@pytest.fixture
def openapi(sqlite_client) -> dict:
    return sqlite_client.get("/openapi.json").json()


def test_results_rows_are_read_by_the_row_schemas_fields():
    schema = json.loads(ROW_SCHEMA_PATH.read_text())
    used = _fields("result")
    assert used >= {"dataset", "strategy", "seed", "trajectory"}, used
    assert used <= _properties(schema, ""), used - _properties(schema, "")


@pytest.mark.parametrize(
    ("variable", "schema"),
    [("cell", "TrialState"), ("trial", "TrialState"), ("s", "StrategyResult"),
     ("seed", "SeedScore"), ("pair", "PairedDifference"), ("pooled", "Comparison"),
     ("member", "ComparedJob"), ("column", "ComparedDataset"), ("ranked", "ComparedStrategy"),
     ("score", "ComparedScore")],
)  # fmt: skip
def test_job_details_are_read_by_their_openapi_fields(openapi, variable, schema):
    used = _fields(variable)
    assert used, f"app.js reads no {variable}.<field>; update this test"
    assert used <= _properties(openapi, schema), used - _properties(openapi, schema)


def test_cost_fields_the_dashboard_plots_are_in_the_row_cost():
    schema = json.loads(ROW_SCHEMA_PATH.read_text())
    assert _fields("cost") <= _properties(schema, "RowCost"), _fields("cost")
