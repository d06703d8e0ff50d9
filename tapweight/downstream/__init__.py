"""Downstream heads, metrics and finetuning shared by TapWeight and every baseline."""

from __future__ import annotations

from tapweight.downstream.finetuning import (
    FinetuneConfig,
    FinetuneResult,
    evaluate,
    finetune,
    proximal_term,
)
from tapweight.downstream.heads import TaskModel, batch_targets, task_loss
from tapweight.downstream.metrics import HIGHER_IS_BETTER, METRICS, is_better, score
from tapweight.downstream.task import DownstreamTask, make_loader

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "DownstreamTask",
    "FinetuneConfig",
    "FinetuneResult",
    "TaskModel",
    "batch_targets",
    "evaluate",
    "finetune",
    "is_better",
    "make_loader",
    "proximal_term",
    "score",
    "task_loss",
]
