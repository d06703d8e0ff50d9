"""Paired statistics: is a strategy's difference from the reference more than seed noise?

Every strategy of a seed starts from the same encoder and goes through the same protocol, so
per dataset the seeds pair the strategies up: the difference on seed s is the reference's test
score minus the other's (sign-flipped where lower is better, so + always means the reference is
better). With a handful of seeds (3–10) the suitable test is the paired t-test: the exact
Wilcoxon signed-rank test cannot reach p < 0.05 below 6 pairs. A difference is a win or a loss
only when its 95% confidence interval excludes 0; otherwise there is no detectable difference.

Across datasets, strategies are ranked per dataset and compared with a Friedman test and the
Nemenyi critical difference (Demšar 2006), drawn as a critical-difference diagram.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from harness.row import ResultRow
from tapweight.downstream.metrics import HIGHER_IS_BETTER

__all__ = [
    "PairedDifference",
    "DetectableEffect",
    "half_width",
    "mean_interval",
    "RankTest",
    "paired_differences",
    "detectable_effects",
    "minimum_detectable",
    "rank_test",
    "draw_critical_difference",
]

CONFIDENCE = 0.95
POWER = 0.8
Verdict = Literal["win", "loss", "no detectable difference", "too few seeds"]


class PairedDifference(BaseModel):
    """The reference against one strategy on one dataset, over their common seeds (the
    report's table, ``tapweight report --json`` and the service's ``comparison``)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    metric: str
    reference: str
    strategy: str
    seeds: int
    mean: float
    """Mean over seeds of the reference's test score minus the strategy's (+ = reference better,
    whatever the metric's direction)."""
    low: float | None = Field(description="95% interval (Student's t); none with one seed")
    high: float | None
    p_value: float | None = Field(
        description="two-sided paired t-test; none with one seed or no spread at all"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Verdict:
        """A win or a loss only when the interval excludes 0."""
        if self.low is None or self.high is None:
            return "too few seeds"
        if self.low > 0:
            return "win"
        if self.high < 0:
            return "loss"
        return "no detectable difference"


@dataclass(frozen=True)
class DetectableEffect:
    """What one dataset's protocol can tell apart: the smallest mean paired difference a paired
    t-test over these seeds detects with 80% power at the 5% level, from the spread of the
    paired differences between strategies; and the largest difference actually seen."""

    dataset: str
    metric: str
    seeds: int
    minimum: float | None
    largest_seen: float

    @property
    def separates(self) -> bool:
        return self.minimum is not None and self.largest_seen >= self.minimum


@dataclass(frozen=True)
class RankTest:
    """Average ranks across datasets, the Friedman test and the Nemenyi critical difference."""

    ranks: dict[str, float]
    datasets: int
    statistic: float | None
    p_value: float | None
    critical_difference: float | None
    """Two average ranks further apart than this differ at the 5% level (Nemenyi)."""


def _test_scores(rows: list[ResultRow]) -> dict[str, dict[str, dict[int, float]]]:
    """dataset -> strategy -> seed -> the protocol's mean test score."""
    scores: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        scores[row.dataset][row.strategy][row.seed] = row.retrained.test_mean
    return scores


def _metrics(rows: list[ResultRow]) -> dict[str, str]:
    return {row.dataset: row.metric for row in rows}


def _interval(differences: list[float]) -> tuple[float | None, float | None, float | None]:
    """95% CI and two-sided p-value of a paired t-test on ``differences``."""
    from scipy import stats

    n = len(differences)
    if n < 2:
        return None, None, None
    mean, spread = statistics.fmean(differences), statistics.stdev(differences)
    half = half_width(spread, n)
    if spread == 0:
        return mean, mean, None
    p_value = float(2 * stats.t.sf(abs(mean) / (spread / math.sqrt(n)), n - 1))
    return mean - half, mean + half, p_value


def half_width(spread: float, count: int) -> float:
    """Half the 95% interval (Student's t) of the mean of ``count`` values whose standard
    deviation is ``spread``."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, count - 1) * spread / math.sqrt(count))


def mean_interval(values: list[float]) -> tuple[float | None, float | None]:
    """The 95% interval (Student's t) of the mean of ``values``, e.g. one strategy's test
    scores over seeds; none below two values."""
    low, high, _ = _interval(values)
    return low, high


def paired_differences(rows: list[ResultRow], reference: str) -> list[PairedDifference]:
    """The reference against every other strategy, per dataset, over common seeds."""
    metrics = _metrics(rows)
    found = []
    for dataset, by_strategy in _test_scores(rows).items():
        if reference not in by_strategy:
            continue
        sign = 1.0 if HIGHER_IS_BETTER[metrics[dataset]] else -1.0
        mine = by_strategy[reference]
        for strategy, theirs in by_strategy.items():
            if strategy == reference:
                continue
            seeds = sorted(set(mine) & set(theirs))
            if not seeds:
                continue
            differences = [sign * (mine[s] - theirs[s]) + 0.0 for s in seeds]
            low, high, p_value = _interval(differences)
            found.append(
                PairedDifference(
                    dataset=dataset,
                    metric=metrics[dataset],
                    reference=reference,
                    strategy=strategy,
                    seeds=len(seeds),
                    mean=statistics.fmean(differences),
                    low=low,
                    high=high,
                    p_value=p_value,
                )
            )
    return found


def minimum_detectable(spread: float, seeds: int) -> float:
    """The smallest mean paired difference a two-sided paired t-test over ``seeds`` pairs
    detects with 80% power at the 5% level, given the standard deviation of the differences."""
    from scipy import stats

    quantiles = stats.t.ppf(0.5 + CONFIDENCE / 2, seeds - 1) + stats.t.ppf(POWER, seeds - 1)
    return float(quantiles * spread / math.sqrt(seeds))


def detectable_effects(rows: list[ResultRow]) -> list[DetectableEffect]:
    """Per dataset, the minimum detectable paired difference and the largest difference seen
    between two strategies' mean test scores."""
    metrics = _metrics(rows)
    effects = []
    for dataset, by_strategy in _test_scores(rows).items():
        names = sorted(by_strategy)
        spreads, seeds = [], 0
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                common = sorted(set(by_strategy[first]) & set(by_strategy[second]))
                if len(common) >= 2:
                    diffs = [by_strategy[first][s] - by_strategy[second][s] for s in common]
                    spreads.append(statistics.stdev(diffs))
                    seeds = max(seeds, len(common))
        means = [statistics.fmean(scores.values()) for scores in by_strategy.values()]
        minimum = None
        if spreads:
            minimum = minimum_detectable(math.sqrt(statistics.fmean(s * s for s in spreads)), seeds)
        effects.append(
            DetectableEffect(
                dataset=dataset,
                metric=metrics[dataset],
                seeds=seeds,
                minimum=minimum,
                largest_seen=max(means) - min(means),
            )
        )
    return effects


def rank_test(average_ranks: dict[str, float], per_dataset: list[dict[str, float]]) -> RankTest:
    """Friedman over the datasets where every strategy has a rank, Nemenyi's critical
    difference for the strategies' average ranks; no test below 2 datasets or 3 strategies."""
    from scipy import stats

    names = sorted(average_ranks)
    complete = [ranks for ranks in per_dataset if all(name in ranks for name in names)]
    k, n = len(names), len(complete)
    if n < 2 or k < 3:
        return RankTest(average_ranks, n, None, None, None)
    samples = [[ranks[name] for ranks in complete] for name in names]
    statistic, p_value = stats.friedmanchisquare(*samples)
    q = stats.studentized_range.ppf(CONFIDENCE, k, math.inf) / math.sqrt(2)
    critical = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    p = float(p_value) if math.isfinite(p_value) else None
    return RankTest(average_ranks, n, float(statistic), p, critical)


def draw_critical_difference(test: RankTest, path: Path) -> bool:
    """The critical-difference diagram (Demšar 2006): strategies on the average-rank axis,
    groups closer than the critical difference joined by a bar. False when there is no test."""
    if test.critical_difference is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(test.ranks.items(), key=lambda item: item[1])
    k = len(ordered)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.3 * k))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(k + 2), 2)
    ax.axhline(0, color="black", linewidth=1)
    for position in range(1, k + 1):
        ax.plot([position, position], [0, 0.2], color="black", linewidth=1)
        ax.text(position, 0.4, str(position), ha="center", fontsize="small")
    for index, (name, rank) in enumerate(ordered):
        y = -(index + 1)
        ax.plot([rank, rank], [0, y], color="grey", linewidth=0.8)
        ax.text(rank, y - 0.1, f"{name} ({rank:.2f})", ha="center", va="top", fontsize="small")
    cd = test.critical_difference
    ax.plot([1, 1 + cd], [1.2, 1.2], color="black", linewidth=2)
    ax.text(1 + cd / 2, 1.4, f"CD = {cd:.2f}", ha="center", fontsize="small")
    cliques: list[tuple[float, float]] = []
    for start in range(k):
        end = max(i for i in range(k) if ordered[i][1] - ordered[start][1] <= cd)
        span = (ordered[start][1], ordered[end][1])
        if end > start and not any(lo <= span[0] and span[1] <= hi for lo, hi in cliques):
            cliques.append(span)
    for index, (low, high) in enumerate(cliques):
        ax.plot([low, high], [-0.4 - 0.25 * index] * 2, color="tab:red", linewidth=3)
    title = f"average rank over {test.datasets} datasets (1 = best)"
    if test.p_value is not None:
        title += f"; Friedman p = {test.p_value:.3g}"
    ax.set_title(title, fontsize="small")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
