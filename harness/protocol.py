"""The one fair protocol every strategy's weights go through.

From the same starting encoder: continued pretraining with the strategy's weights for the same
number of steps (none for ``no_cp``), then finetuning with the same settings for each finetuning
seed, each selecting its epoch on validation and reading the test split once at its end.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.row import ProtocolScores
from tapweight.components import Components
from tapweight.downstream.finetuning import FinetuneConfig, finetune
from tapweight.pretrain import PretrainConfig
from tapweight.result import WeightingResult

__all__ = ["RetrainedRuns", "retrain", "finetune_seeds", "search_seed"]


@dataclass
class RetrainedRuns:
    """The protocol's runs of one strategy's weights: scores per finetuning seed and cost."""

    metric: str
    valid: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    pretrain_passes: int = 0
    finetune_passes: int = 0
    seconds: float = 0.0
    encoder: Any = None
    """The encoder continued-pretrained with the weights, before any finetuning: the artifact."""

    def scores(self) -> ProtocolScores:
        return ProtocolScores(metric=self.metric, valid=self.valid, test=self.test)


def finetune_seeds(seed: int, count: int) -> list[int]:
    """Finetuning seeds of one experiment seed: the same list for every strategy (the spec
    caps ``count`` at 20)."""
    return [seed * 1000 + k for k in range(count)]


def search_seed(seed: int) -> int:
    """The seed of a strategy's own search for one experiment seed (its grid points, Optuna
    trials, internal runs): disjoint from the protocol's pretraining seed (``seed``) and its
    finetuning seeds, so the protocol's final run never replays a search trial and a search's
    validation score is not a best-of-N of the protocol's."""
    return seed * 1000 + 500


def retrain(
    parts: Components,
    result: WeightingResult,
    pretrain: PretrainConfig,
    finetune_config: FinetuneConfig,
    seed: int,
    num_finetune_seeds: int,
) -> RetrainedRuns:
    """Score ``result.weights`` under the shared protocol (never reuses the strategy's encoder)."""
    began = time.perf_counter()
    runs = RetrainedRuns(parts.task.metric)
    weights = result.weights if result.continued_pretraining else None
    quiet = pretrain.model_copy(update={"progress": False})
    encoder, runs.pretrain_passes = parts.pretrained_copy(weights, quiet, seed)
    runs.encoder = encoder
    for finetune_seed in finetune_seeds(seed, num_finetune_seeds):
        config = finetune_config.model_copy(update={"seed": finetune_seed, "progress": False})
        torch.manual_seed(finetune_seed)
        finetuned = finetune(copy.deepcopy(encoder), parts.task, config)
        runs.valid.append(finetuned.valid_score)
        runs.test.append(finetuned.test_score)
        runs.finetune_passes += sum(int(r.get("steps", 0)) for r in finetuned.history)
    runs.seconds = time.perf_counter() - began
    return runs
