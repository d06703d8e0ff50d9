"""Grid search on the weight simplex.

Points are all weight vectors whose entries are multiples of ``1/resolution`` and sum to 1
(K=3 objectives at resolution 4 give 15 points). Every point is an independent trial
(continued pretraining + finetuning); the searcher proposes them in lattice order, so a runner
with free workers runs them in parallel, and the best validation score wins.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Any

from baselines.base import Budget
from baselines.search import Proposal, TrialSearch, WeightSearcher
from tapweight.components import Components
from tapweight.errors import ConfigError

__all__ = ["GridSearch", "LatticeSearcher", "simplex_lattice"]


def simplex_lattice(num_objectives: int, resolution: int) -> list[list[float]]:
    """All points of the simplex with coordinates in ``{0, 1/r, ..., 1}`` (stars and bars)."""
    points = []
    for bars in combinations(range(resolution + num_objectives - 1), num_objectives - 1):
        edges = (-1, *bars, resolution + num_objectives - 1)
        points.append([(edges[i + 1] - edges[i] - 1) / resolution for i in range(num_objectives)])
    return points


class LatticeSearcher(WeightSearcher):
    """Proposes every lattice point once, in order; never stops a trial early."""

    def __init__(self, points: list[list[float]]) -> None:
        self.points = points
        self.proposed = 0

    def ask(self) -> Proposal | None:
        if self.proposed == len(self.points):
            return None
        self.proposed += 1
        return Proposal(self.proposed, self.points[self.proposed - 1])

    def tell(self, number: int, score: float | None) -> None:
        """Nothing to learn: the lattice is fixed in advance."""


class GridSearch(TrialSearch):
    """Every point of a lattice on the simplex; the best validation score wins."""

    name = "grid"

    def __init__(self, *, resolution: int = 4, seed: int = 0) -> None:
        super().__init__(seed=seed)
        if resolution < 1:
            raise ConfigError(f"grid resolution must be >= 1, got {resolution}")
        self.resolution = resolution

    def __repr__(self) -> str:
        return f"{type(self).__name__}(resolution={self.resolution}, seed={self.seed})"

    def planned_trials(self, num_objectives: int) -> int:
        return comb(self.resolution + num_objectives - 1, num_objectives - 1)

    def searcher(self, num_objectives: int, metric: str) -> LatticeSearcher:
        return LatticeSearcher(simplex_lattice(num_objectives, self.resolution))

    def describe(self) -> dict[str, Any]:
        return {"resolution": self.resolution}

    def check(self, parts: Components, budget: Budget) -> None:
        k = len(parts.objectives)
        points = self.planned_trials(k)
        if points * budget.pretrain.steps > budget.total_pretrain_steps:
            affordable = budget.total_pretrain_steps // budget.pretrain.steps
            raise ConfigError(
                f"grid resolution {self.resolution} with {k} objectives gives {points} points × "
                f"{budget.pretrain.steps} pretraining steps = {points * budget.pretrain.steps} "
                f"steps, more than the budget of {budget.total_pretrain_steps} (it affords "
                f"{affordable} points); lower the resolution or raise the budget"
            )
        super().check(parts, budget)
