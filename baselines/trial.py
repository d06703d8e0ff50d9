"""The trial every weight-search strategy shares: continued pretraining with given weights from
the starting encoder, then finetuning, scored on validation only (the test split is never read
during a search)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from baselines.base import Budget
from tapweight.components import Components
from tapweight.downstream.finetuning import FinetuneResult, finetune
from tapweight.pretrain import continued_pretrain

__all__ = ["TrialOutcome", "train_with_weights"]


@dataclass
class TrialOutcome:
    weights: list[float]
    valid_score: float
    encoder: nn.Module
    finetuned: FinetuneResult
    seconds: float
    passes: int


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
    encoder = copy.deepcopy(parts.encoder)
    passes = 0
    if weights is not None:
        objectives = copy.deepcopy(parts.objectives)
        config = budget.pretrain.model_copy(update={"seed": seed})
        torch.manual_seed(seed)
        result = continued_pretrain(
            encoder, objectives, weights, parts.corpus, config, parts.corpus_collate
        )
        passes += result.forward_backward_passes
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
