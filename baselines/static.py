"""Static strategies: weights set, not searched.

``no_cp`` finetunes the starting encoder directly (no continued pretraining), ``uniform`` gives
every objective 1/K, ``single:<objective>`` puts all weight on one objective. Each trains its
encoder once with ``budget.pretrain`` and scores it on validation, so it also has a native score.
"""

from __future__ import annotations

import time

from baselines.base import Budget, BudgetUse, ProgressCallback, Strategy
from baselines.trial import train_with_weights
from tapweight.components import Components
from tapweight.errors import ConfigError
from tapweight.result import Cost, TrajectoryPoint, WeightingResult

__all__ = ["FixedWeights", "NoContinuedPretraining", "Uniform", "SingleObjective"]


class FixedWeights(Strategy):
    """Base of the static strategies: :meth:`weights` says what to train with."""

    continued_pretraining = True

    def weights(self, names: list[str]) -> list[float]:
        raise NotImplementedError

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return budget.pretrain.steps if self.continued_pretraining else 0

    def budget_use(self, num_objectives: int, budget: Budget) -> BudgetUse:
        if not self.continued_pretraining:
            return BudgetUse(0, "no continued pretraining")
        return BudgetUse(budget.pretrain.steps, "fixed weights: no search, one scoring run")

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        names = [o.name for o in parts.objectives]
        weights = self.weights(names)
        began = time.perf_counter()
        trial = train_with_weights(
            parts, weights if self.continued_pretraining else None, budget, self.seed
        )
        point = TrajectoryPoint(
            step=budget.pretrain.steps if self.continued_pretraining else 0,
            weights=weights,
            metrics={f"valid_{parts.task.metric}": trial.valid_score},
        )
        if callback:
            callback(point)
        return WeightingResult(
            strategy=self.label,
            objective_names=names,
            weights=weights,
            trajectory=[point],
            cost=Cost(
                wall_clock_s=time.perf_counter() - began,
                device=budget.pretrain.device,
                passes={"pretrain": trial.passes},
                full_trainings=int(self.continued_pretraining),
            ),
            native_scores={f"valid_{parts.task.metric}": trial.valid_score},
            continued_pretraining=self.continued_pretraining,
            encoder=trial.encoder if self.continued_pretraining else None,
        )

    @property
    def label(self) -> str:
        return self.name


class NoContinuedPretraining(FixedWeights):
    """Finetune the starting encoder directly: no continued pretraining at all."""

    name = "no_cp"
    continued_pretraining = False

    def weights(self, names: list[str]) -> list[float]:
        return [1 / len(names)] * len(names)  # unused: no continued pretraining happens


class Uniform(FixedWeights):
    """Equal weight 1/K on every objective."""

    name = "uniform"

    def weights(self, names: list[str]) -> list[float]:
        return [1 / len(names)] * len(names)


class SingleObjective(FixedWeights):
    """All weight on one objective, named as single:<objective>."""

    name = "single"

    def __init__(self, *, objective: str, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.objective = objective

    def __repr__(self) -> str:
        return f"{type(self).__name__}(objective={self.objective!r}, seed={self.seed})"

    @property
    def label(self) -> str:
        return f"single:{self.objective}"

    def objectives_problem(self, objectives: list[str]) -> str | None:
        if self.objective in objectives:
            return None
        return (
            f"single:{self.objective} names an objective that is not in this run; "
            f"objectives: {', '.join(objectives)}"
        )

    def weights(self, names: list[str]) -> list[float]:
        if problem := self.objectives_problem(names):
            raise ConfigError(problem)
        return [1.0 if n == self.objective else 0.0 for n in names]
