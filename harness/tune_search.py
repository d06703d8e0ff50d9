"""Any :class:`~baselines.search.TrialSearch` strategy's searcher, run by Ray Tune.

Two thin adapters over one :class:`~baselines.search.WeightSearcher`: a Tune ``Searcher`` that
turns ``ask``/``tell`` into ``suggest``/``on_trial_complete``, and a Tune scheduler that asks the
same searcher's ``should_stop`` after each intermediate epoch. Proposals, early stopping and the
result are the strategy's own, so a spec means the same here as in the local runner.
"""

from __future__ import annotations

import pickle
from typing import Any

from ray.tune import ResultGrid
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from baselines.search import Proposal, SearchOutcome, WeightSearcher

__all__ = [
    "StrategySearcher",
    "StrategyEarlyStopping",
    "search_outcome",
    "SCORE",
    "EPOCH",
    "COMPLETE",
]

SCORE, EPOCH, COMPLETE = "valid", "epoch", "complete"
"""Keys of what a search trial reports: its validation score after a finetuning epoch, the
epoch, and (with the final score) that the trial completed."""


class StrategySearcher(Searcher):
    """Tune's ``suggest``/``on_trial_complete`` over a strategy's ``ask``/``tell``."""

    def __init__(self, searcher: WeightSearcher, mode: str) -> None:
        super().__init__(metric=SCORE, mode=mode)
        self.weight_searcher = searcher  # not `.searcher`: Tune's wrappers use that name
        self.numbers: dict[str, int] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.weight_searcher.ask()
        if proposal is None:
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's own sentinel
        self.numbers[trial_id] = proposal.number
        return {"weights": proposal.weights, "number": proposal.number}

    def should_stop(self, trial_id: str, epoch: int, score: float) -> bool:
        return self.weight_searcher.should_stop(self.numbers[trial_id], epoch, score)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        number = self.numbers.pop(trial_id, None)
        if number is not None:
            self.weight_searcher.tell(number, _score(result) if not error else None)

    def get_state(self) -> dict[str, Any]:
        return {"weight_searcher": self.weight_searcher, "numbers": self.numbers}

    def set_state(self, state: dict[str, Any]) -> None:
        """In place: the early-stopping scheduler holds this very object."""
        self.weight_searcher, self.numbers = state["weight_searcher"], state["numbers"]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.get_state(), file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.set_state(pickle.load(file))


class StrategyEarlyStopping(FIFOScheduler):
    """Stops a running trial when the strategy's searcher says so (Optuna's pruner, say)."""

    def __init__(self, searcher: StrategySearcher) -> None:
        super().__init__()
        self.strategy_searcher = searcher

    def on_trial_result(self, tune_controller, trial, result: dict[str, Any]) -> str:
        if result.get(COMPLETE) or EPOCH not in result:
            return TrialScheduler.CONTINUE
        stop = self.strategy_searcher.should_stop(
            trial.trial_id, int(result[EPOCH]), float(result[SCORE])
        )
        return TrialScheduler.STOP if stop else TrialScheduler.CONTINUE


def _score(result: dict[str, Any] | None) -> float | None:
    """A finished trial's validation score; None when it was stopped before completing."""
    return float(result[SCORE]) if result is not None and result.get(COMPLETE) else None


def search_outcome(results: ResultGrid) -> SearchOutcome:
    """The trials of a finished Tune search, in proposal order (also after a restore, when the
    searcher that ran them lives in the restored experiment)."""
    outcome = SearchOutcome()
    trials = [results[i] for i in range(len(results))]  # a ResultGrid is indexed, not iterable
    configs = [trial.config or {} for trial in trials]
    for config, result in sorted(zip(configs, trials, strict=True), key=lambda t: t[0]["number"]):
        score = _score(result.metrics) if result.error is None else None
        if score is None:
            outcome.stopped += 1
        else:
            outcome.completed.append(Proposal(config["number"], config["weights"]))
            outcome.scores.append(score)
    return outcome
