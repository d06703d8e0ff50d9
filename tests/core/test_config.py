"""TapWeight's settings: the reference's defaults by domain and task, and a run's length."""

from __future__ import annotations

from tapweight.core import TapWeightConfig


def test_a_run_records_and_checkpoints_ten_times_unless_told() -> None:
    config = TapWeightConfig.for_run("molecule", "regression", iterations=95)
    assert (config.valid_every, config.checkpoint_every) == (9, 9)
    assert config.lam == 0.01  # the regression defaults of for_task still apply
    told = TapWeightConfig.for_run(
        "text", "classification", iterations=95, record_every=5, checkpoint_every=50
    )
    assert (told.valid_every, told.checkpoint_every, told.lam) == (5, 50, 1.0)
    assert TapWeightConfig.for_run("molecule", "regression", iterations=3).valid_every == 1
