"""The trial every weight-search strategy shares: continued pretraining with given weights from
the starting encoder, then finetuning, scored on validation only (the test split is never read
during a search)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from baselines.base import Budget
from tapweight.components import Components
from tapweight.downstream.finetuning import FinetuneResult, finetune
from tapweight.downstream.metrics import is_better
from tapweight.result import Cost, TrajectoryPoint

__all__ = ["TrialOutcome", "SearchTrials", "train_with_weights", "scored_point", "best_point"]


@dataclass
class TrialOutcome:
    weights: list[float]
    valid_score: float
    encoder: nn.Module
    finetuned: FinetuneResult
    seconds: float
    passes: int


def scored_point(
    step: int, weights: Sequence[float], metric: str, score: float, history: list[TrajectoryPoint]
) -> TrajectoryPoint:
    """A search trial as a trajectory point: its validation score and the best so far."""
    best = history[-1].metrics[f"best_valid_{metric}"] if history else None
    best = score if is_better(metric, score, best) else best
    return TrajectoryPoint(
        step=step, weights=list(weights),
        metrics={f"valid_{metric}": score, f"best_valid_{metric}": best},
    )  # fmt: skip


def best_point(history: list[TrajectoryPoint], metric: str) -> TrajectoryPoint:
    """The first trial that reached the best validation score of a search."""
    best = history[-1].metrics[f"best_valid_{metric}"]
    return next(p for p in history if p.metrics[f"valid_{metric}"] == best)


def train_with_weights(
    parts: Components,
    weights: Sequence[float] | None,
    budget: Budget,
    seed: int,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrialOutcome:
    """Continued pretraining with ``weights`` (None: none at all), then finetune; validation only.

    The starting encoder and objective heads are copied, so trials never leak into each other.
    """
    start = time.perf_counter()
    encoder, passes = parts.pretrained_copy(weights, budget.pretrain, seed)
    config = budget.finetune.model_copy(update={"seed": seed})
    finetuned = finetune(encoder, parts.task, config, on_epoch=on_epoch, evaluate_test=False)
    return TrialOutcome(
        weights=list(weights) if weights is not None else [],
        valid_score=finetuned.valid_score,
        encoder=encoder,
        finetuned=finetuned,
        seconds=time.perf_counter() - start,
        passes=passes,
    )


class SearchTrials:
    """Bookkeeping of a trial search run in this process: runs trials, counts passes and
    keeps only the best trial's encoder (not one per trial)."""

    def __init__(self, parts: Components, budget: Budget, seed: int) -> None:
        self.parts, self.budget, self.seed = parts, budget, seed
        self.metric = parts.task.metric
        self.began = time.perf_counter()
        self.passes = 0
        self.best_score: float | None = None
        self.best_encoder: nn.Module | None = None

    def evaluate(
        self, weights: list[float], on_epoch: Callable[[dict[str, float]], None] | None = None
    ) -> float:
        trial = train_with_weights(self.parts, weights, self.budget, self.seed, on_epoch)
        self.passes += trial.passes
        if is_better(self.metric, trial.valid_score, self.best_score):
            self.best_score, self.best_encoder = trial.valid_score, trial.encoder
        return trial.valid_score

    def cost(self, full_trainings: int) -> Cost:
        """What the trials run so far cost, as a search's :class:`Cost`."""
        return Cost(
            wall_clock_s=time.perf_counter() - self.began,
            device=self.budget.pretrain.device,
            passes={"pretrain": self.passes},
            full_trainings=full_trainings,
        )
