"""Strategies that search by whole trials, in one ask/tell shape (Optuna's ``Study.ask/tell``,
Ray Tune's ``Searcher``).

A :class:`TrialSearch` strategy (grid, Optuna) proposes weight vectors; each one is a full trial:
continued pretraining with those weights, then finetuning, scored on validation. The strategy
only decides which weights to try next and which running trial to stop early, through a
:class:`WeightSearcher`; *who* runs the trials is someone else's business. Here
:func:`run_search` runs them one after another in this process; the harness runs the same
searcher on Ray Tune, trials in parallel, with the same proposals, the same early stopping and
the same result (:meth:`TrialSearch.conclude`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from baselines.base import Budget, BudgetUse, ProgressCallback, Strategy
from baselines.trial import SearchTrials, best_point, scored_point
from tapweight.components import Components
from tapweight.errors import ConfigError
from tapweight.result import Cost, TrajectoryPoint, WeightingResult

__all__ = [
    "Proposal",
    "WeightSearcher",
    "TrialSearch",
    "TrialPruned",
    "SearchOutcome",
    "run_search",
]


class Proposal(NamedTuple):
    """A weight vector to try; ``number`` names the trial in later reports and tells."""

    number: int
    weights: list[float]


class TrialPruned(Exception):
    """Raised inside a trial's evaluation when its searcher stops it early."""


class WeightSearcher(ABC):
    """One search's state. Picklable, so a runner can checkpoint and restore it."""

    @abstractmethod
    def ask(self) -> Proposal | None:
        """The next weights to try, or None when the search has proposed all it will."""

    def should_stop(self, number: int, epoch: int, score: float) -> bool:
        """Given trial ``number``'s validation ``score`` after finetuning ``epoch`` (not the
        last), whether to stop it now. Searchers without early stopping never do."""
        return False

    @abstractmethod
    def tell(self, number: int, score: float | None) -> None:
        """Trial ``number`` ended: its validation score, or None if stopped early or failed."""


@dataclass
class SearchOutcome:
    """The completed trials in the order they were proposed, and how many were stopped."""

    completed: list[Proposal] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    stopped: int = 0


Evaluate = Callable[[list[float], Callable[[int, float], None]], float]
"""``evaluate(weights, report)`` trains and returns the validation score; it calls
``report(epoch, score)`` after intermediate finetuning epochs, which raises
:class:`TrialPruned` when the searcher stops the trial."""


def run_search(
    searcher: WeightSearcher,
    evaluate: Evaluate,
    on_trial: Callable[[Proposal, float], None] | None = None,
    description: str = "search",
    planned: int | None = None,
    progress: bool = False,
) -> SearchOutcome:
    """Run the searcher's trials here, one after another, until it proposes no more."""
    outcome = SearchOutcome()
    with tqdm(total=planned, desc=description, disable=None if progress else True) as bar:
        while (proposal := searcher.ask()) is not None:

            def report(epoch: int, score: float, number: int = proposal.number) -> None:
                if searcher.should_stop(number, epoch, score):
                    raise TrialPruned

            bar.update()
            try:
                score = evaluate(proposal.weights, report)
            except TrialPruned:
                searcher.tell(proposal.number, None)
                outcome.stopped += 1
                continue
            searcher.tell(proposal.number, score)
            outcome.completed.append(proposal)
            outcome.scores.append(score)
            if on_trial:
                on_trial(proposal, score)
    return outcome


class TrialSearch(Strategy):
    """A strategy whose search is a sequence of whole trials proposed by a
    :class:`WeightSearcher`; every trial takes one run of ``budget.pretrain.steps``."""

    requires_validation = True

    @abstractmethod
    def planned_trials(self, num_objectives: int) -> int:
        """How many trials the searcher proposes (each costs one pretraining run)."""

    @abstractmethod
    def searcher(self, num_objectives: int, metric: str) -> WeightSearcher:
        """A fresh search over ``num_objectives`` weights, for a task scored by ``metric``."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The strategy's settings, as recorded in its result."""

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return self.planned_trials(num_objectives) * budget.pretrain.steps

    def budget_use(self, num_objectives: int, budget: Budget) -> BudgetUse:
        trials = self.planned_trials(num_objectives)
        return BudgetUse(
            trials * budget.pretrain.steps,
            f"{trials} trials of {budget.pretrain.steps} steps each; the rest makes no whole trial",
        )

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        trials = SearchTrials(parts, budget, self.seed)
        num_objectives = len(parts.objectives)

        def evaluate(weights: list[float], report: Callable[[int, float], None]) -> float:
            last = budget.finetune.epochs

            def on_epoch(record: dict[str, float]) -> None:
                if int(record["epoch"]) < last:
                    report(int(record["epoch"]), record[f"valid_{trials.metric}"])

            return trials.evaluate(weights, on_epoch)

        history: list[TrajectoryPoint] = []

        def on_trial(proposal: Proposal, score: float) -> None:
            point = scored_point(len(history) + 1, proposal.weights, trials.metric, score, history)
            history.append(point)
            if callback:
                callback(point)

        outcome = run_search(
            self.searcher(num_objectives, trials.metric),
            evaluate,
            on_trial,
            self.name,
            self.planned_trials(num_objectives),
            budget.pretrain.progress,
        )
        cost = trials.cost(len(outcome.completed) + outcome.stopped)
        names = [str(o.name) for o in parts.objectives]
        return self.conclude(names, trials.metric, outcome, cost, trials.best_encoder)

    def conclude(
        self, objective_names: list[str], metric: str, outcome: SearchOutcome, cost: Cost,
        encoder: Any = None,
    ) -> WeightingResult:  # fmt: skip
        """The result of a finished search, wherever its trials ran: the best validation score
        wins (the first trial that reached it). ``encoder`` is the best trial's, when kept."""
        if not outcome.completed:
            raise ConfigError(
                f"{self.name}: no trial completed ({outcome.stopped} stopped early); stop fewer "
                "trials or propose more"
            )
        history: list[TrajectoryPoint] = []
        for step, (proposal, score) in enumerate(
            zip(outcome.completed, outcome.scores, strict=True), start=1
        ):
            history.append(scored_point(step, proposal.weights, metric, score, history))
        best = best_point(history, metric)
        return WeightingResult(
            strategy=self.name,
            objective_names=objective_names,
            weights=best.weights,
            trajectory=history,
            cost=cost,
            native_scores={f"valid_{metric}": best.metrics[f"valid_{metric}"]},
            settings={
                **self.describe(),
                "completed": len(outcome.completed),
                "stopped_early": outcome.stopped,
            },
            encoder=encoder,
        )
