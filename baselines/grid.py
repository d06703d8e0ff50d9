"""Grid search on the weight simplex.

Points are all weight vectors whose entries are multiples of ``1/resolution`` and sum to 1
(K=3 objectives at resolution 4 give 15 points). Every point is an independent trial
(continued pretraining + finetuning), so the harness runs them in parallel as Ray Tune's grid;
this class runs them in turn and keeps the best validation score.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from math import comb

from tqdm.auto import tqdm

from baselines.base import Budget, BudgetUse, ProgressCallback, Strategy
from baselines.trial import SearchTrials, best_point, scored_point
from tapweight.components import Components
from tapweight.errors import ConfigError
from tapweight.result import TrajectoryPoint, WeightingResult

__all__ = ["GridSearch", "simplex_lattice"]


def simplex_lattice(num_objectives: int, resolution: int) -> list[list[float]]:
    """All points of the simplex with coordinates in ``{0, 1/r, ..., 1}`` (stars and bars)."""
    points = []
    for bars in combinations(range(resolution + num_objectives - 1), num_objectives - 1):
        edges = (-1, *bars, resolution + num_objectives - 1)
        points.append([(edges[i + 1] - edges[i] - 1) / resolution for i in range(num_objectives)])
    return points


class GridSearch(Strategy):
    """Every point of a lattice on the simplex; the best validation score wins."""

    name = "grid"
    requires_validation = True

    def __init__(self, *, resolution: int = 4, seed: int = 0) -> None:
        super().__init__(seed=seed)
        if resolution < 1:
            raise ConfigError(f"grid resolution must be >= 1, got {resolution}")
        self.resolution = resolution

    def __repr__(self) -> str:
        return f"{type(self).__name__}(resolution={self.resolution}, seed={self.seed})"

    def num_points(self, num_objectives: int) -> int:
        return comb(self.resolution + num_objectives - 1, num_objectives - 1)

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return self.num_points(num_objectives) * budget.pretrain.steps

    def budget_use(self, num_objectives: int, budget: Budget) -> BudgetUse:
        points = self.num_points(num_objectives)
        return BudgetUse(
            points * budget.pretrain.steps,
            f"{points} grid points of {budget.pretrain.steps} steps each; the rest makes no "
            "whole point",
        )

    def check(self, parts: Components, budget: Budget) -> None:
        k = len(parts.objectives)
        points = self.num_points(k)
        if points * budget.pretrain.steps > budget.total_pretrain_steps:
            affordable = budget.total_pretrain_steps // budget.pretrain.steps
            raise ConfigError(
                f"grid resolution {self.resolution} with {k} objectives gives {points} points × "
                f"{budget.pretrain.steps} pretraining steps = {points * budget.pretrain.steps} "
                f"steps, more than the budget of {budget.total_pretrain_steps} (it affords "
                f"{affordable} points); lower the resolution or raise the budget"
            )
        super().check(parts, budget)

    def search_points(
        self,
        num_objectives: int,
        evaluate: Callable[[list[float]], float],
        metric: str,
        callback: ProgressCallback | None = None,
        progress: bool = False,
    ) -> tuple[list[float], float, list[TrajectoryPoint]]:
        """Evaluate every lattice point; return the best point, its score and the history."""
        history: list[TrajectoryPoint] = []
        points = simplex_lattice(num_objectives, self.resolution)
        for index, weights in enumerate(
            tqdm(points, desc="grid", disable=None if progress else True)
        ):
            point = scored_point(index + 1, weights, metric, evaluate(weights), history)
            history.append(point)
            if callback:
                callback(point)
        best = best_point(history, metric)
        return best.weights, best.metrics[f"valid_{metric}"], history

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        trials = SearchTrials(parts, budget, self.seed)
        best, score, history = self.search_points(
            len(parts.objectives),
            trials.evaluate,
            trials.metric,
            callback,
            budget.pretrain.progress,
        )
        settings = {"resolution": self.resolution, "points": len(history)}
        return trials.result("grid", best, score, history, settings)
