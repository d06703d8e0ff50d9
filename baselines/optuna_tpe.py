"""Optuna TPE over the weight simplex, with optional median or successive-halving pruning.

The search space is K unconstrained parameters ``u_i ∈ (0, 1)`` mapped to weights by
``w_i = -log u_i / Σ_j -log u_j``: uniform ``u`` gives the uniform (Dirichlet(1)) prior on the
simplex, so TPE's startup trials cover the simplex evenly. Each trial is the same trial function
as the grid; intermediate validation scores (one per finetuning epoch) feed the pruner.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tqdm.auto import tqdm

from baselines.base import Budget, BudgetUse, ProgressCallback, Strategy
from baselines.trial import SearchTrials, best_point, scored_point
from tapweight.components import Components
from tapweight.downstream.metrics import HIGHER_IS_BETTER
from tapweight.errors import ConfigError
from tapweight.result import TrajectoryPoint, WeightingResult

__all__ = ["OptunaTPE", "weights_from_params", "search_space"]

_PRUNERS = ("none", "median", "successive_halving")


def search_space(num_objectives: int) -> dict[str, tuple[float, float]]:
    """Parameter name -> (low, high); shared with the harness's Ray Tune ``OptunaSearch``."""
    return {f"u{i}": (1e-6, 1.0) for i in range(num_objectives)}


def weights_from_params(params: dict[str, float]) -> list[float]:
    """Map ``u_i`` to the simplex (exponential spacings: a Dirichlet(1) sample for uniform u)."""
    spacings = [-math.log(params[f"u{i}"]) for i in range(len(params))]
    total = sum(spacings)
    return [s / total for s in spacings]


class OptunaTPE(Strategy):
    """Trials sampled by Optuna's TPE sampler (seeded, so runs repeat exactly)."""

    name = "optuna"
    requires_validation = True

    def __init__(
        self, *, n_trials: int = 20, n_startup_trials: int = 5, pruner: str = "none", seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        if n_trials < 1:
            raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
        if n_trials < n_startup_trials:
            raise ConfigError(
                f"n_trials={n_trials} is fewer than n_startup_trials={n_startup_trials}: TPE would "
                "never leave its random start-up phase; raise n_trials or lower n_startup_trials"
            )
        if pruner not in _PRUNERS:
            raise ConfigError(f"unknown pruner {pruner!r}; choose {', '.join(_PRUNERS)}")
        self.n_trials, self.n_startup_trials, self.pruner = n_trials, n_startup_trials, pruner

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_trials={self.n_trials}, n_startup_trials="
            f"{self.n_startup_trials}, pruner={self.pruner!r}, seed={self.seed})"
        )

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return self.n_trials * budget.pretrain.steps

    def budget_use(self, num_objectives: int, budget: Budget) -> BudgetUse:
        return BudgetUse(
            self.n_trials * budget.pretrain.steps,
            f"n_trials={self.n_trials} trials of {budget.pretrain.steps} steps each",
        )

    def study(self, metric: str):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials)
        pruner = {
            "none": optuna.pruners.NopPruner(),
            "median": optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials),
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner(),
        }[self.pruner]
        direction = "maximize" if HIGHER_IS_BETTER[metric] else "minimize"
        return optuna.create_study(sampler=sampler, pruner=pruner, direction=direction)

    def search_points(
        self,
        num_objectives: int,
        evaluate: Callable[[list[float], Callable[[float, int], None]], float],
        metric: str,
        callback: ProgressCallback | None = None,
        progress: bool = False,
    ) -> tuple[list[float], float, list[TrajectoryPoint]]:
        """Run the study; ``evaluate(weights, report)`` may call ``report(score, step)``."""
        import optuna

        study, history = self.study(metric), []
        space = search_space(num_objectives)
        for index in tqdm(range(self.n_trials), desc="optuna", disable=None if progress else True):
            trial = study.ask()
            weights = weights_from_params({k: trial.suggest_float(k, *b) for k, b in space.items()})

            def report(score: float, step: int, _trial=trial) -> None:
                _trial.report(score, step)
                if _trial.should_prune():
                    raise optuna.TrialPruned

            try:
                score = evaluate(weights, report)
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            study.tell(trial, score)
            point = scored_point(index + 1, weights, metric, score, history)
            history.append(point)
            if callback:
                callback(point)
        if not history:
            raise ConfigError("every Optuna trial was pruned; use a gentler pruner or more trials")
        best = best_point(history, metric)
        return best.weights, best.metrics[f"valid_{metric}"], history

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        trials = SearchTrials(parts, budget, self.seed)

        def evaluate(weights: list[float], report: Callable[[float, int], None]) -> float:
            def on_epoch(record: dict[str, float]) -> None:
                report(record[f"valid_{trials.metric}"], int(record["epoch"]))

            return trials.evaluate(weights, on_epoch)

        weights, score, history = self.search_points(
            len(parts.objectives), evaluate, trials.metric, callback, budget.pretrain.progress
        )
        settings = {"n_trials": self.n_trials, "pruner": self.pruner, "completed": len(history)}
        return trials.result("optuna", weights, score, history, settings)
