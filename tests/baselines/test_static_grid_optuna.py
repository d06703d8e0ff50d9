"""Static strategies, grid search and Optuna TPE: landscapes with a known answer, real data."""

from __future__ import annotations

import pytest

from baselines import GridSearch, OptunaTPE, make_strategy, simplex_lattice
from baselines.optuna_tpe import weights_from_params
from baselines.search import run_search
from tapweight.errors import ConfigError
from tapweight.result import Cost, WeightingResult

from .conftest import tiny_budget


def landscape(target):
    """Validation 'score' peaking at ``target`` (higher is better, as ROC-AUC)."""
    return lambda weights, *_: -sum((w - t) ** 2 for w, t in zip(weights, target, strict=True))


def searched(strategy, num_objectives, evaluate, metric):
    """Run the strategy's searcher here and conclude: (best weights, its score, history)."""
    searcher = strategy.searcher(num_objectives, metric)
    outcome = run_search(searcher, evaluate)
    cost = Cost(wall_clock_s=0.0, device="cpu")
    result = strategy.conclude([f"o{i}" for i in range(num_objectives)], metric, outcome, cost)
    return result.weights, result.native_scores[f"valid_{metric}"], result.trajectory


def test_lattice_has_the_stars_and_bars_count_and_lies_on_the_simplex():
    points = simplex_lattice(3, 4)
    assert len(points) == 15 and len({tuple(p) for p in points}) == 15
    assert all(abs(sum(p) - 1) < 1e-12 and all(4 * w == int(4 * w) for w in p) for p in points)
    assert len(simplex_lattice(4, 2)) == 10 and simplex_lattice(2, 1) == [[0.0, 1.0], [1.0, 0.0]]


def test_grid_finds_the_known_best_point_of_a_landscape():
    target = [0.5, 0.25, 0.25]
    best, score, history = searched(GridSearch(resolution=4), 3, landscape(target), "roc_auc")
    assert best == target and score == 0 and len(history) == 15
    assert history[-1].metrics["best_valid_roc_auc"] == 0
    # a metric where lower is better picks the worst point of the same landscape instead
    worst, *_ = searched(GridSearch(resolution=4), 3, landscape(target), "rmse")
    assert worst == [0.0, 0.0, 1.0] or worst == [0.0, 1.0, 0.0]


def test_grid_refuses_a_resolution_the_budget_cannot_pay_for(tiny_bbbp):
    with pytest.raises(ConfigError, match=r"15 points × 5 .* affords 3 points"):
        GridSearch(resolution=4).check(tiny_bbbp, tiny_budget(steps=5, total=15))


def test_optuna_with_a_fixed_seed_is_reproducible():
    def run(seed):
        strategy = OptunaTPE(n_trials=12, n_startup_trials=4, seed=seed)
        return searched(strategy, 3, landscape([0.6, 0.3, 0.1]), "roc_auc")

    first, second, other = run(7), run(7), run(8)
    assert [p.weights for p in first[2]] == [p.weights for p in second[2]]
    assert first[0] == second[0] and first[1] == second[1]
    assert [p.weights for p in first[2]] != [p.weights for p in other[2]]
    assert all(abs(sum(p.weights) - 1) < 1e-9 for p in first[2])


def test_optuna_pruner_stops_bad_trials_early():
    def evaluate(weights, report):
        for epoch in range(1, 6):  # intermediate scores: constant per trial
            report(epoch, weights[0])
        return weights[0]

    strategy = OptunaTPE(n_trials=20, n_startup_trials=3, pruner="median", seed=0)
    outcome = run_search(strategy.searcher(2, "roc_auc"), evaluate)
    assert outcome.stopped > 0 and len(outcome.completed) + outcome.stopped == 20
    best, _, history = searched(strategy, 2, evaluate, "roc_auc")
    assert len(history) < 20  # some trials were pruned, so fewer completed
    assert best[0] == max(p.weights[0] for p in history)


def test_weights_from_params_is_on_the_simplex():
    weights = weights_from_params({"u0": 0.5, "u1": 0.25, "u2": 0.9})
    assert abs(sum(weights) - 1) < 1e-12 and weights[1] > weights[0] > weights[2]


@pytest.mark.parametrize(
    ("spec", "settings", "message"),
    [
        ("nope", {}, "unknown strategy 'nope'"),
        ("single", {}, "needs an objective"),
        ("uniform:x", {}, "takes no ':' argument"),
        ("optuna", {"n_trials": 3, "n_startup_trials": 5}, "fewer than n_startup_trials=5"),
        ("optuna", {"pruner": "hyperband"}, "unknown pruner"),
        ("grid", {"resolution": 0}, "resolution must be >= 1"),
        ("grid", {"bogus": 1}, "unexpected keyword"),
        ("grid", {"resolution": 2.5}, "'resolution' = 2.5: Input should be a valid integer"),
        ("optuna", {"seed": "x"}, "'seed' = 'x': Input should be a valid integer"),
        ("mometas", {"policy_lr": float("inf")}, "'policy_lr' = inf: Input should be a finite"),
        ("tapweight", {"lam": 0}, "exactly zero"),
    ],
)
def test_bad_strategy_specs_are_refused(spec, settings, message):
    with pytest.raises(ConfigError, match=message):
        make_strategy(spec, **settings)


@pytest.mark.dataset
@pytest.mark.parametrize("spec", ["no_cp", "uniform", "single:motif"])
def test_static_strategies_on_real_data(tiny_bbbp, spec):
    result = make_strategy(spec).run(tiny_bbbp, tiny_budget())
    WeightingResult.model_validate(result.model_dump())
    assert result.strategy == spec and 0 <= result.native_scores["valid_roc_auc"] <= 1
    if spec == "no_cp":
        assert not result.continued_pretraining and result.encoder is None
        assert result.cost.passes["pretrain"] == 0
    else:
        assert result.cost.passes["pretrain"] == 5 and result.encoder is not None
    if spec == "single:motif":
        assert result.weights == [0.0, 0.0, 1.0]


@pytest.mark.dataset
def test_single_objective_not_in_the_run_is_refused(tiny_bbbp):
    with pytest.raises(
        ConfigError, match="single:graphcl names an objective that is not in this run"
    ):
        make_strategy("single:graphcl").run(tiny_bbbp, tiny_budget())


@pytest.mark.dataset
def test_grid_and_optuna_on_real_data(tiny_bbbp):
    grid = GridSearch(resolution=1).run(tiny_bbbp, tiny_budget(steps=4, total=12))
    assert grid.weights in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    assert len(grid.trajectory) == 3 and grid.cost.full_trainings == 3
    best = max(p.metrics["valid_roc_auc"] for p in grid.trajectory)
    assert grid.native_scores["valid_roc_auc"] == best
    tpe = OptunaTPE(n_trials=3, n_startup_trials=2, seed=1).run(
        tiny_bbbp, tiny_budget(steps=4, total=12)
    )
    WeightingResult.model_validate(tpe.model_dump())
    assert len(tpe.trajectory) == 3 and tpe.cost.passes["pretrain"] == 12
