"""Optuna TPE over the weight simplex, with optional median or successive-halving pruning.

The search space is K unconstrained parameters ``u_i ∈ (0, 1)`` mapped to weights by
``w_i = -log u_i / Σ_j -log u_j``: uniform ``u`` gives the uniform (Dirichlet(1)) prior on the
simplex, so TPE's startup trials cover the simplex evenly. Each trial is the same trial as the
grid's; intermediate validation scores (one per finetuning epoch) feed the pruner, through the
searcher's ``should_stop``, wherever the trials run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from baselines.search import Proposal, TrialSearch, WeightSearcher
from tapweight.downstream.metrics import HIGHER_IS_BETTER
from tapweight.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = ["OptunaTPE", "StudySearcher", "weights_from_params", "search_space"]

_PRUNERS = ("none", "median", "successive_halving")


def search_space(num_objectives: int) -> dict[str, tuple[float, float]]:
    """Parameter name -> (low, high) of the ``u_i``."""
    return {f"u{i}": (1e-6, 1.0) for i in range(num_objectives)}


def weights_from_params(params: dict[str, float]) -> list[float]:
    """Map ``u_i`` to the simplex (exponential spacings: a Dirichlet(1) sample for uniform u)."""
    spacings = [-math.log(params[f"u{i}"]) for i in range(len(params))]
    total = sum(spacings)
    return [s / total for s in spacings]


class StudySearcher(WeightSearcher):
    """An Optuna study driven by ask/tell: ``n_trials`` proposals, pruning on intermediate
    validation scores."""

    def __init__(self, study: optuna.Study, num_objectives: int, n_trials: int) -> None:
        self.study, self.num_objectives, self.n_trials = study, num_objectives, n_trials
        self.running: dict[int, optuna.Trial] = {}
        self.proposed = 0

    def ask(self) -> Proposal | None:
        if self.proposed == self.n_trials:
            return None
        trial = self.study.ask()
        space = search_space(self.num_objectives)
        weights = weights_from_params({k: trial.suggest_float(k, *b) for k, b in space.items()})
        self.proposed += 1
        self.running[trial.number] = trial
        return Proposal(trial.number, weights)

    def should_stop(self, number: int, epoch: int, score: float) -> bool:
        trial = self.running[number]
        trial.report(score, epoch)
        return trial.should_prune()

    def tell(self, number: int, score: float | None) -> None:
        import optuna

        trial = self.running.pop(number)
        if score is None:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, score)


class OptunaTPE(TrialSearch):
    """Trials sampled by Optuna's TPE sampler (seeded, so runs repeat exactly)."""

    name = "optuna"

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

    def planned_trials(self, num_objectives: int) -> int:
        return self.n_trials

    def describe(self) -> dict[str, Any]:
        return {
            "n_trials": self.n_trials,
            "n_startup_trials": self.n_startup_trials,
            "pruner": self.pruner,
        }

    def searcher(self, num_objectives: int, metric: str) -> StudySearcher:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials)
        pruner = {
            "none": optuna.pruners.NopPruner(),
            "median": optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials),
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner(),
        }[self.pruner]
        direction = (
            optuna.study.StudyDirection.MAXIMIZE
            if HIGHER_IS_BETTER[metric]
            else optuna.study.StudyDirection.MINIMIZE
        )
        study = optuna.create_study(sampler=sampler, pruner=pruner, direction=direction)
        return StudySearcher(study, num_objectives, self.n_trials)
