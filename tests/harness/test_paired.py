"""Paired statistics against hand computations: a difference is a win or a loss only when its
95% interval excludes 0, the rank test follows Demšar (2006), and the detectable effect says
when a protocol cannot tell strategies apart."""

from __future__ import annotations

import math

import pytest

from harness.paired import detectable_effects, mean_interval, paired_differences, rank_test
from tests.support import result_row


def _rows(dataset, metric, scores):
    return [
        result_row(dataset, strategy, seed, value, 1.0, metric)
        for strategy, values in scores.items()
        for seed, value in enumerate(values)
    ]


def test_a_consistent_difference_is_a_win_with_the_t_interval():
    rows = _rows(
        "bbbp", "roc_auc", {"tapweight": [0.80, 0.82, 0.81], "uniform": [0.70, 0.71, 0.69]}
    )
    (found,) = paired_differences(rows, "tapweight")
    differences = [0.10, 0.11, 0.12]
    mean, spread = sum(differences) / 3, 0.01
    half = 4.302652729911275 * spread / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert found.mean == pytest.approx(mean)
    assert (found.low, found.high) == pytest.approx((mean - half, mean + half))
    assert found.verdict == "win" and found.p_value < 0.01 and found.seeds == 3


def test_the_interval_of_a_mean_is_the_t_interval_and_needs_two_values():
    low, high = mean_interval([0.80, 0.82, 0.81])
    half = 4.302652729911275 * 0.01 / math.sqrt(3)
    assert (low, high) == pytest.approx((0.81 - half, 0.81 + half))
    assert mean_interval([0.8]) == (None, None)
    assert mean_interval([0.8, 0.8]) == (0.8, 0.8)  # no spread: the interval is the mean


def test_noise_larger_than_the_mean_difference_is_no_detectable_difference():
    rows = _rows(
        "bbbp", "roc_auc", {"tapweight": [0.80, 0.70, 0.85], "uniform": [0.75, 0.76, 0.77]}
    )
    (found,) = paired_differences(rows, "tapweight")
    assert found.mean > 0 and found.low < 0 < found.high
    assert found.verdict == "no detectable difference" and found.p_value > 0.05


def test_lower_is_better_flips_the_sign_so_plus_means_the_reference_is_better():
    rows = _rows("esol", "rmse", {"tapweight": [1.0, 1.1, 0.9], "uniform": [2.0, 2.2, 1.9]})
    (found,) = paired_differences(rows, "tapweight")
    assert found.mean == pytest.approx(1.033333, rel=1e-5) and found.verdict == "win"
    rows = _rows("esol", "rmse", {"tapweight": [2.0, 2.2, 1.9], "uniform": [1.0, 1.1, 0.9]})
    assert paired_differences(rows, "tapweight")[0].verdict == "loss"


def test_only_common_seeds_pair_and_one_seed_gives_no_verdict():
    rows = _rows("bbbp", "roc_auc", {"tapweight": [0.8], "uniform": [0.7, 0.6]})
    (found,) = paired_differences(rows, "tapweight")
    assert found.seeds == 1 and found.low is None and found.verdict == "too few seeds"


def test_the_detectable_effect_warns_when_strategies_sit_within_seed_noise():
    noisy = _rows("bbbp", "roc_auc", {"a": [0.80, 0.70, 0.85], "b": [0.79, 0.72, 0.83]})
    (effect,) = detectable_effects(noisy)
    assert effect.minimum is not None and not effect.separates
    clear = _rows("bbbp", "roc_auc", {"a": [0.80, 0.81, 0.82], "b": [0.60, 0.62, 0.61]})
    assert detectable_effects(clear)[0].separates


def test_friedman_and_the_nemenyi_critical_difference():
    ranks = [{"a": 1, "b": 2, "c": 3}] * 4 + [{"a": 1, "b": 3, "c": 2}]
    average = {"a": 1.0, "b": 2.2, "c": 2.8}
    test = rank_test(average, ranks)
    # q(0.05, k=3) = 2.343 (Demšar 2006, table 5): CD = 2.343 · √(3·4 / (6·5)).
    assert test.critical_difference == pytest.approx(2.343 * math.sqrt(12 / 30), rel=1e-3)
    assert test.datasets == 5 and test.p_value is not None and test.p_value < 0.05
    assert rank_test({"a": 1.0, "b": 2.0}, [{"a": 1, "b": 2}] * 3).critical_difference is None
