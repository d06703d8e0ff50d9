"""Every registered strategy, on real data at CPU scale, returns a valid shared result."""

from __future__ import annotations

import pytest

from baselines import STRATEGIES, make_strategy
from tapweight.result import WeightingResult

from .conftest import tiny_budget

pytestmark = pytest.mark.dataset

# the smallest settings with which each strategy still does its whole job once
SMALL = {
    "tapweight": ("tapweight", {}),
    "no_cp": ("no_cp", {}),
    "uniform": ("uniform", {}),
    "single": ("single:attr_mask", {}),
    "grid": ("grid", {"resolution": 1}),
    "optuna": ("optuna", {"n_trials": 2, "n_startup_trials": 1}),
    "mometas": ("mometas", {"update_every": 3}),
    "meta_tartan": ("meta_tartan", {"dev_head_max_steps": 3}),
    "luo": ("luo", {"episode_steps": 3, "probe_steps": 3}),
}


# what each strategy's search spends of a budget of 10 steps with runs of 3: the whole budget,
# or what fits in whole units of its search, or one scoring run for the static strategies
SPENT = {
    "tapweight": 10,
    "no_cp": 0,
    "uniform": 3,
    "single": 3,
    "grid": 9,  # 3 points × 3 steps
    "optuna": 6,  # 2 trials × 3 steps
    "mometas": 10,
    "meta_tartan": 10,
    "luo": 9,  # 3 episodes × 3 steps
}


def test_every_strategy_has_a_contract_case():
    assert set(SMALL) == set(STRATEGIES) == set(SPENT)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_strategy_spends_the_budget_or_states_why_not(tiny_bbbp, name):
    """Counted where pretraining happens, not computed by the strategy."""
    spec, settings = SMALL[name]
    strategy = make_strategy(spec, seed=0, **settings)
    budget = tiny_budget(steps=3, total=10)
    cost = strategy.run(tiny_bbbp, budget).cost
    assert cost.pretrain_steps == SPENT[name]
    assert cost.pretrain_steps == strategy.budget_use(3, budget).steps
    assert cost.pretrain_steps + cost.unspent_pretrain_steps == budget.total_pretrain_steps
    assert (cost.unspent_reason is None) == (cost.unspent_pretrain_steps == 0), cost


@pytest.mark.parametrize("name", sorted(SMALL))
def test_strategy_result_validates_against_the_shared_type(tiny_bbbp, name):
    spec, settings = SMALL[name]
    strategy = make_strategy(spec, seed=0, **settings)
    seen = []
    result = strategy.run(tiny_bbbp, tiny_budget(steps=3, total=9), callback=seen.append)
    assert not any(k.startswith("test_") for k in result.native_scores)  # the protocol's split
    again = WeightingResult.model_validate_json(result.model_dump_json())
    assert again.weights == result.weights and again.objective_names == [
        "attr_mask",
        "edge_pred",
        "motif",
    ]
    assert abs(sum(result.weights) - 1) < 1e-6 and all(w >= 0 for w in result.weights)
    assert result.cost.wall_clock_s > 0 and result.cost.total_passes >= 0
    assert seen == result.trajectory[-len(seen) :] and seen  # progress reached the callback
