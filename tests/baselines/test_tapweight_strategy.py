"""TapWeight as a strategy: its run is sized by the budget, like every other strategy's."""

from __future__ import annotations

import pytest

from baselines.tapweight_strategy import TapWeightStrategy
from tapweight.errors import ConfigError


def test_iterations_come_from_the_budget_only() -> None:
    with pytest.raises(ConfigError, match="total_pretrain_steps"):
        TapWeightStrategy(iterations=50)
