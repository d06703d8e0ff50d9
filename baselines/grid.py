"""Grid search on the weight simplex.

Points are all weight vectors whose entries are multiples of ``1/resolution`` and sum to 1
(K=3 objectives at resolution 4 give 15 points). Every point is an independent trial
(continued pretraining + finetuning), so the harness runs them in parallel as Ray Tune's grid;
this class runs them in turn and keeps the best validation score.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import combinations
from math import comb

from tqdm.auto import tqdm

from baselines.base import Budget, ProgressCallback, Strategy
from baselines.trial import train_with_weights
from tapweight.components import Components
from tapweight.downstream.metrics import is_better
from tapweight.errors import ConfigError
from tapweight.result import Cost, TrajectoryPoint, WeightingResult

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

    def search(
        self,
        num_objectives: int,
        evaluate: Callable[[list[float]], float],
        metric: str,
        callback: ProgressCallback | None = None,
        progress: bool = False,
    ) -> tuple[list[float], float, list[TrajectoryPoint]]:
        """Evaluate every lattice point; return the best point, its score and the history."""
        best, best_score, history = None, None, []
        points = simplex_lattice(num_objectives, self.resolution)
        for index, weights in enumerate(
            tqdm(points, desc="grid", disable=None if progress else True)
        ):
            score = evaluate(weights)
            if is_better(metric, score, best_score):
                best, best_score = weights, score
            point = TrajectoryPoint(
                step=index + 1, weights=weights,
                metrics={f"valid_{metric}": score, f"best_valid_{metric}": best_score},
            )  # fmt: skip
            history.append(point)
            if callback:
                callback(point)
        assert best is not None and best_score is not None
        return best, best_score, history

    def run(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        self.check(parts, budget)
        began, passes, metric = time.perf_counter(), 0, parts.task.metric
        kept: dict[str, object] = {"score": None, "encoder": None}  # only the best encoder

        def evaluate(weights: list[float]) -> float:
            nonlocal passes
            trial = train_with_weights(parts, weights, budget, self.seed)
            passes += trial.passes
            if is_better(metric, trial.valid_score, kept["score"]):  # type: ignore[arg-type]
                kept.update(score=trial.valid_score, encoder=trial.encoder)
            return trial.valid_score

        best, score, history = self.search(
            len(parts.objectives), evaluate, metric, callback, budget.pretrain.progress
        )
        return WeightingResult(
            strategy="grid",
            objective_names=[o.name for o in parts.objectives],
            weights=best,
            trajectory=history,
            cost=Cost(
                wall_clock_s=time.perf_counter() - began,
                device=budget.pretrain.device,
                passes={"pretrain": passes},
                full_trainings=len(history),
            ),
            native_scores={f"valid_{metric}": score},
            settings={"resolution": self.resolution, "points": len(history)},
            encoder=kept["encoder"],
        )
