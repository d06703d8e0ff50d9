"""TapWeight's level graph: the levels a config asks for, their optimizers, and betty's engine.

Three levels (Zhang, Somayajula, Xie, TMLR 2025)::

    reweight  (top)    logits, λ = softmax(logits); loss = validation loss of the finetuned model
    finetune  (middle) copy of the encoder + task head; loss = task loss + lam·‖θ_ft − θ_pt‖²
    pretrain  (bottom) encoder + objective heads; loss = Σ λᵢ·Lᵢ on unlabeled data

with ``u2l = {reweight: [pretrain]}`` and ``l2u = {pretrain: [finetune], finetune: [reweight]}``.
The ``blo`` mode is the bi-level ablation: one model on Σ λᵢ·Lᵢ + task loss under ``reweight``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from tapweight.core import hypergradient
from tapweight.core.config import TapWeightConfig
from tapweight.core.problems import (
    Finetune,
    Joint,
    JointModel,
    Level,
    ObjectiveLogits,
    Pretrain,
    PretrainModel,
    Proximal,
    Reweight,
)
from tapweight.data.batches import ResumableBatches
from tapweight.downstream.heads import TaskModel
from tapweight.downstream.task import DownstreamTask
from tapweight.objectives.base import Objectives
from tapweight.training import build_optimizer

if TYPE_CHECKING:
    from betty.configs import Config
    from betty.engine import Engine

__all__ = ["LevelGraph", "build_level_graph"]


@dataclass
class LevelGraph:
    """The levels by name, and the models the runner reads between steps."""

    levels: dict[str, Level]
    downstream: Callable[[], TaskModel]
    """The finetuned model the trajectory and the result score on validation."""
    encoder_under_training: Callable[[], nn.Module]
    """The continued-pretrained encoder a result hands on to the protocol."""

    def engine(self, config: TapWeightConfig) -> Engine:
        """Betty's engine over these levels, with the dependencies of ``config.mode``."""
        from betty.configs import EngineConfig
        from betty.engine import Engine
        from betty.logging.logger_base import get_logger

        get_logger().setLevel(logging.WARNING)  # betty prints its level graph at INFO
        strategy = "gpu" if config.device.startswith("cuda") else "cpu"
        if config.mode == "blo":
            joint, reweight = self.levels["joint"], self.levels["reweight"]
            dependencies = {"u2l": {reweight: [joint]}, "l2u": {joint: [reweight]}}
        else:
            pretrain, finetune, reweight = (
                self.levels[k] for k in ("pretrain", "finetune", "reweight")
            )
            # With the proximal term in the upper loss, λ also gets its direct gradient through
            # the pretrained encoder (main_roberta.py:542); else the molecule graph (:573).
            direct = [reweight] if config.reweight_includes_proximal else []
            dependencies = {
                "u2l": {reweight: [pretrain]},
                "l2u": {pretrain: [finetune, *direct], finetune: [reweight]},
            }
        engine_config = EngineConfig(
            train_iters=config.iterations, valid_step=config.iterations + 1, strategy=strategy
        )
        return Engine(
            problems=list(self.levels.values()), config=engine_config, dependencies=dependencies
        )


def _betty_settings(
    config: TapWeightConfig, unroll_steps: int = 1, warmup_steps: int = 0
) -> Config:
    """Betty's per-level config: which hypergradient, how often, after how many warm-up steps."""
    from betty.configs import Config

    kind = config.hypergradient
    if config.structured_hypergradient and kind in hypergradient.STRUCTURED:
        kind = f"structured_{kind}"
    return Config(
        type=kind, unroll_steps=unroll_steps, darts_alpha=config.darts_alpha,
        warmup_steps=warmup_steps,
    )  # fmt: skip


def _level_optimizer(
    config: TapWeightConfig, level: Literal["pretrain", "finetune", "reweight"], module: nn.Module
) -> torch.optim.Optimizer:
    """The reweight level has its own optimizer settings; pretrain and finetune share momentum
    and weight decay."""
    if level == "reweight":
        return build_optimizer(
            config.reweight_optimizer, module.parameters(), config.reweight_lr,
            weight_decay=config.reweight_weight_decay, adam_eps=config.adam_eps,
        )  # fmt: skip
    name, lr = (
        (config.finetune_optimizer, config.finetune_lr)
        if level == "finetune"
        else (config.pretrain_optimizer, config.pretrain_lr)
    )
    return build_optimizer(
        name, module.parameters(), lr, weight_decay=config.weight_decay,
        momentum=config.momentum, adam_eps=config.adam_eps,
    )  # fmt: skip


def build_level_graph(
    config: TapWeightConfig,
    encoder: nn.Module,
    objectives: Objectives,
    logits: ObjectiveLogits,
    corpus: Any,
    corpus_collate: Callable | None,
    task: DownstreamTask,
) -> LevelGraph:
    """The levels of ``config.mode`` over copies of ``encoder`` (``objectives`` and ``logits``
    are trained in place), each with its optimizer and resumable batches."""
    cfg = config
    mean, std = task.train_target_stats() if task.task_type == "regression" else (None, None)
    batches = ResumableBatches(corpus, cfg.pretrain_batch_size, cfg.seed, corpus_collate)
    train = ResumableBatches(task.train, cfg.finetune_batch_size, cfg.seed + 1, task.collate)
    valid = ResumableBatches(task.valid, cfg.valid_batch_size, cfg.seed + 2, task.collate)
    common: dict[str, Any] = {
        "seed": cfg.seed,
        "autocast_bf16": cfg.precision == "bf16",
        "lr_step": (cfg.lr_step_size, cfg.lr_gamma) if cfg.lr_step_size else None,
    }
    task_model = TaskModel(copy.deepcopy(encoder), task.task_type, task.num_outputs, mean, std)
    proximal = None
    levels: dict[str, Level]
    if cfg.mode == "blo":
        joint_model = JointModel(task_model, objectives)
        levels = {
            "joint": Joint(
                "joint", joint_model, _level_optimizer(cfg, "pretrain", joint_model), batches,
                _betty_settings(cfg, cfg.hypergradient_every, cfg.warmup_steps),
                weights=logits.weights, task_batches=train, **common,
            ),
        }  # fmt: skip
        downstream = lambda: joint_model.task_model  # noqa: E731
        encoder_under_training = lambda: joint_model.task_model.encoder  # noqa: E731
    else:
        pretrain_model = PretrainModel(copy.deepcopy(encoder), objectives)
        proximal = Proximal(
            lambda: task_model.encoder, lambda: pretrain_model.encoder, cfg.lam,
            cfg.proximal, cfg.prox_normalize,
        )  # fmt: skip
        levels = {
            "pretrain": Pretrain(
                "pretrain", pretrain_model, _level_optimizer(cfg, "pretrain", pretrain_model),
                batches, _betty_settings(cfg, cfg.unroll_steps), weights=logits.weights, **common,
            ),
            "finetune": Finetune(
                "finetune", task_model, _level_optimizer(cfg, "finetune", task_model), train,
                _betty_settings(cfg, cfg.hypergradient_every, cfg.warmup_steps),
                proximal=proximal, **common,
            ),
        }  # fmt: skip
        downstream = lambda: task_model  # noqa: E731
        encoder_under_training = lambda: pretrain_model.encoder  # noqa: E731
    levels["reweight"] = Reweight(
        "reweight", logits, _level_optimizer(cfg, "reweight", logits), valid,
        _betty_settings(cfg), downstream=downstream,
        proximal=proximal if cfg.reweight_includes_proximal else None, **common,
    )  # fmt: skip
    return LevelGraph(levels, downstream, encoder_under_training)
