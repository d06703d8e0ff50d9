"""The TapWeight runner: builds the levels, drives betty's engine, records and checkpoints.

Three levels (Zhang, Somayajula, Xie, TMLR 2025)::

    reweight  (top)    logits, λ = softmax(logits); loss = validation loss of the finetuned model
    finetune  (middle) copy of the encoder + task head; loss = task loss + lam·‖θ_ft − θ_pt‖²
    pretrain  (bottom) encoder + objective heads; loss = Σ λᵢ·Lᵢ on unlabeled data

with ``u2l = {reweight: [pretrain]}`` and ``l2u = {pretrain: [finetune], finetune: [reweight]}``.
The ``blo`` mode is the bi-level ablation: one model on Σ λᵢ·Lᵢ + task loss under ``reweight``.

Betty has no checkpointing; :class:`TapWeight` saves the whole state (modules, optimizers,
λ, step, batch positions, RNG states, trajectory) atomically and resumes from it exactly.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from tapweight.core import compat, hypergradient
from tapweight.core.config import RESUMABLE_FIELDS, TapWeightConfig
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
from tapweight.downstream.finetuning import evaluate
from tapweight.downstream.heads import TaskModel
from tapweight.downstream.task import DownstreamTask
from tapweight.errors import ConfigError, TrainingError
from tapweight.result import Cost, TrajectoryPoint, WeightingResult

__all__ = ["TapWeight", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "tapweight-checkpoint.pt"
_CHECKPOINT_VERSION = 2


def _optimizer(
    kind: str, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
    adam_eps: float = 1e-8,
) -> torch.optim.Optimizer:  # fmt: skip
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay, eps=adam_eps)


SECOND_ORDER = ("exact", "neumann", "cg")
"""Hypergradients that differentiate through a backward pass (darts and sama do not)."""


def attention_for(hypergradient: str) -> AbstractContextManager:
    """The fused attention kernels (flash, memory-efficient) have no double backward on CUDA, so
    second-order hypergradients run a text encoder's attention on the math kernel."""
    return sdpa_kernel(SDPBackend.MATH) if hypergradient in SECOND_ORDER else nullcontext()


class TapWeight:
    """Learn objective weights for one downstream task.

    Args:
        encoder: the starting encoder (left untouched; copies are trained).
        objectives: the continued-pretraining objectives (copied: the caller's heads stay as
            they are, so one set of components can serve several strategies).
        corpus: unlabeled dataset for continued pretraining.
        task: the downstream task; its test split is read once, at the very end.
        config: settings (see :class:`TapWeightConfig`).
        corpus_collate: how corpus items become a batch (None: PyG graphs).
        checkpoint_dir: where the resumable checkpoint is written (None: no checkpoints).
        callback: called with every recorded :class:`TrajectoryPoint` (progress, the service).

    Example:
        >>> result = TapWeight(encoder, objectives, corpus, task, config).run()  # doctest: +SKIP
        >>> result.weights                                                       # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: nn.Module,
        objectives: nn.ModuleList,
        corpus: Any,
        task: DownstreamTask,
        config: TapWeightConfig | None = None,
        corpus_collate: Callable | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        callback: Callable[[TrajectoryPoint], None] | None = None,
    ) -> None:
        compat.apply()
        hypergradient.register()
        self.config = config or TapWeightConfig()
        self.objective_names = [o.name for o in objectives]
        if len(corpus) < 2:
            raise ConfigError("the pretraining corpus needs at least two examples")
        self.task, self.callback = task, callback
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        cfg = self.config
        if cfg.deterministic:
            torch.set_num_threads(1)
        torch.manual_seed(cfg.seed)
        mean, std = task.train_target_stats() if task.task_type == "regression" else (None, None)
        objectives = copy.deepcopy(objectives)
        self.logits = ObjectiveLogits(len(objectives))
        batches = ResumableBatches(corpus, cfg.pretrain_batch_size, cfg.seed, corpus_collate)
        train = ResumableBatches(task.train, cfg.finetune_batch_size, cfg.seed + 1, task.collate)
        valid = ResumableBatches(task.valid, cfg.valid_batch_size, cfg.seed + 2, task.collate)
        self.levels = self._build_levels(encoder, objectives, batches, train, valid, mean, std)

    # -- construction -------------------------------------------------------------------------
    def _settings(self, unroll_steps: int = 1, warmup_steps: int = 0):
        from betty.configs import Config

        cfg = self.config
        kind = cfg.hypergradient
        if cfg.structured_hypergradient and kind in hypergradient.STRUCTURED:
            kind = f"structured_{kind}"
        return Config(
            type=kind, unroll_steps=unroll_steps, darts_alpha=cfg.darts_alpha,
            warmup_steps=warmup_steps,
        )  # fmt: skip

    def _level_optimizer(self, level: str, module: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        if level == "reweight":
            return _optimizer(
                cfg.reweight_optimizer, module.parameters(), cfg.reweight_lr,
                weight_decay=cfg.reweight_weight_decay, adam_eps=cfg.adam_eps,
            )  # fmt: skip
        kind, lr = (
            (cfg.finetune_optimizer, cfg.finetune_lr)
            if level == "finetune"
            else (cfg.pretrain_optimizer, cfg.pretrain_lr)
        )
        return _optimizer(
            kind, module.parameters(), lr, cfg.momentum, cfg.weight_decay, cfg.adam_eps
        )

    def _build_levels(
        self, encoder, objectives, batches, train, valid, mean, std
    ) -> dict[str, Level]:
        cfg = self.config
        common = {
            "seed": cfg.seed,
            "autocast_bf16": cfg.precision == "bf16",
            "lr_step": (cfg.lr_step_size, cfg.lr_gamma) if cfg.lr_step_size else None,
        }
        weights = self.logits.weights
        task_model = TaskModel(
            copy.deepcopy(encoder), self.task.task_type, self.task.num_outputs, mean, std
        )
        proximal = None
        if cfg.mode == "blo":
            joint_model = JointModel(task_model, objectives)
            lower = Joint(
                "joint", joint_model, self._level_optimizer("pretrain", joint_model), batches,
                self._settings(cfg.hypergradient_every, cfg.warmup_steps),
                weights=weights, task_batches=train, **common,
            )  # fmt: skip
            levels: dict[str, Level] = {"joint": lower}
            downstream = lambda: joint_model.task_model  # noqa: E731
        else:
            pretrain_model = PretrainModel(copy.deepcopy(encoder), objectives)
            proximal = Proximal(
                lambda: task_model.encoder, lambda: pretrain_model.encoder, cfg.lam,
                cfg.proximal, cfg.prox_normalize,
            )  # fmt: skip
            levels = {
                "pretrain": Pretrain(
                    "pretrain", pretrain_model, self._level_optimizer("pretrain", pretrain_model),
                    batches, self._settings(cfg.unroll_steps), weights=weights, **common,
                ),
                "finetune": Finetune(
                    "finetune", task_model, self._level_optimizer("finetune", task_model), train,
                    self._settings(cfg.hypergradient_every, cfg.warmup_steps),
                    proximal=proximal, **common,
                ),
            }  # fmt: skip
            downstream = lambda: task_model  # noqa: E731
        levels["reweight"] = Reweight(
            "reweight", self.logits, self._level_optimizer("reweight", self.logits), valid,
            self._settings(), downstream=downstream,
            proximal=proximal if cfg.reweight_includes_proximal else None, **common,
        )  # fmt: skip
        self.downstream = downstream
        self.encoder_under_training = (
            (lambda: joint_model.task_model.encoder)
            if cfg.mode == "blo"
            else (lambda: pretrain_model.encoder)
        )
        return levels

    def _engine(self):
        from betty.configs import EngineConfig
        from betty.engine import Engine
        from betty.logging.logger_base import get_logger

        get_logger().setLevel(logging.WARNING)  # betty prints its level graph at INFO
        cfg = self.config
        strategy = "gpu" if cfg.device.startswith("cuda") else "cpu"
        if cfg.mode == "blo":
            joint, reweight = self.levels["joint"], self.levels["reweight"]
            dependencies = {"u2l": {reweight: [joint]}, "l2u": {joint: [reweight]}}
        else:
            pretrain, finetune, reweight = (
                self.levels[k] for k in ("pretrain", "finetune", "reweight")
            )
            # With the proximal term in the upper loss, λ also gets its direct gradient through
            # the pretrained encoder (main_roberta.py:542); else the molecule graph (:573).
            direct = [reweight] if cfg.reweight_includes_proximal else []
            dependencies = {
                "u2l": {reweight: [pretrain]},
                "l2u": {pretrain: [finetune, *direct], finetune: [reweight]},
            }
        config = EngineConfig(
            train_iters=cfg.iterations, valid_step=cfg.iterations + 1, strategy=strategy
        )
        return Engine(problems=list(self.levels.values()), config=config, dependencies=dependencies)

    # -- checkpoints --------------------------------------------------------------------------
    def _state(
        self, step: int, trajectory: list[TrajectoryPoint], elapsed: float
    ) -> dict[str, Any]:
        levels = {}
        for name, level in self.levels.items():
            levels[name] = {
                "module": level.module.state_dict(),
                "optimizer": level.optimizer.state_dict(),
                "scheduler": level.scheduler.state_dict() if level.scheduler else None,
                "count": level._count,
                "passes": level.passes,
                "batches": level.batches.state_dict(),
            }
            if isinstance(level, Joint):
                levels[name]["task_batches"] = level.task_batches.state_dict()
        return {
            "version": _CHECKPOINT_VERSION,
            "config": self.config.model_dump(),
            "objectives": self.objective_names,
            "task": self.task.name,
            "step": step,
            "levels": levels,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            "trajectory": [p.model_dump() for p in trajectory],
            "elapsed": elapsed,
        }

    def _save(self, state: dict[str, Any]) -> None:
        assert self.checkpoint_path is not None
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def _check_compatible(self, state: dict[str, Any]) -> None:
        saved, current = state["config"], self.config.model_dump()
        for field, value in current.items():
            if field not in RESUMABLE_FIELDS and saved.get(field) != value:
                raise ConfigError(
                    f"cannot resume {self.checkpoint_path}: it was made with {field}="
                    f"{saved.get(field)!r}, this run has {field}={value!r}"
                )
        for what, now in (("objectives", self.objective_names), ("task", self.task.name)):
            if state[what] != now:
                raise ConfigError(
                    f"cannot resume {self.checkpoint_path}: it was made for {what} "
                    f"{state[what]!r}, this run uses {now!r}"
                )

    def _restore(self, state: dict[str, Any]) -> None:
        self._check_compatible(state)
        for name, level in self.levels.items():
            saved = state["levels"][name]
            level.module.load_state_dict(saved["module"])
            level.optimizer.load_state_dict(saved["optimizer"])
            if level.scheduler is not None:
                level.scheduler.load_state_dict(saved["scheduler"])
            level._count, level.passes = saved["count"], saved["passes"]
            level.batches.load_state_dict(saved["batches"])
            if isinstance(level, Joint):
                level.task_batches.load_state_dict(saved["task_batches"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])

    # -- running ------------------------------------------------------------------------------
    def _record(self, step: int, sums: dict[str, list[float]]) -> TrajectoryPoint:
        metric = self.task.metric
        model = self.downstream()
        valid = evaluate(
            model,
            self.task.loader("valid", self.config.valid_batch_size),
            (metric,),
            self.config.device,
        )
        model.train()
        mean = {k: float(np.mean(v)) for k, v in sums.items() if v}
        return TrajectoryPoint(
            step=step,
            weights=self.logits.weights().detach().tolist(),
            objective_losses={k: v for k, v in mean.items() if k in self.objective_names},
            metrics={
                **{f"{k}_loss": v for k, v in mean.items() if k not in self.objective_names},
                f"valid_{metric}": valid[metric],
            },
        )

    def run(self, resume: bool = False) -> WeightingResult:
        """Train for ``config.iterations`` steps (continuing a checkpoint when ``resume``)."""
        cfg = self.config
        engine = self._engine()
        start, trajectory, elapsed = 0, [], 0.0
        if resume and self.checkpoint_path and self.checkpoint_path.is_file():
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
            self._restore(state)
            start, elapsed = state["step"], state["elapsed"]
            trajectory = [TrajectoryPoint.model_validate(p) for p in state["trajectory"]]
        if start >= cfg.iterations:
            raise ConfigError(
                f"the checkpoint is at step {start}, not before iterations={cfg.iterations}; "
                "raise iterations to continue"
            )
        engine.train()
        sums: dict[str, list[float]] = defaultdict(list)
        began = time.perf_counter() - elapsed
        bar = tqdm(
            range(start + 1, cfg.iterations + 1),
            initial=start,
            total=cfg.iterations,
            desc=f"TapWeight {self.task.name}",
            disable=None if cfg.progress else True,
        )
        for step in bar:
            engine.global_step = step
            try:
                with attention_for(cfg.hypergradient):
                    engine.train_step()
            except TrainingError as error:
                if self.checkpoint_path and self.checkpoint_path.is_file():
                    kept = f"the last good checkpoint is kept at {self.checkpoint_path}"
                else:
                    kept = "no checkpoint had been written yet"
                raise TrainingError(f"{error} (step {step}); {kept}") from None
            for name, level in self.levels.items():
                for key, value in level.last_loss.items():
                    sums[key if key in self.objective_names else f"{name}_{key}"].append(value)
            if step % cfg.valid_every == 0 or step == cfg.iterations:
                point = self._record(step, sums)
                trajectory.append(point)
                sums.clear()
                bar.set_postfix(
                    λ="/".join(f"{w:.2f}" for w in point.weights),
                    **{self.task.metric: f"{point.metrics[f'valid_{self.task.metric}']:.3f}"},
                )
                if self.callback:
                    self.callback(point)
            if self.checkpoint_path and (
                step % cfg.checkpoint_every == 0 or step == cfg.iterations
            ):
                self._save(self._state(step, trajectory, time.perf_counter() - began))
        return self._result(trajectory, time.perf_counter() - began)

    def _result(self, trajectory: list[TrajectoryPoint], wall_clock: float) -> WeightingResult:
        metric = self.task.metric
        model = self.downstream()
        batch_size = self.config.valid_batch_size
        # the native model is scored on validation only: the test split is the protocol's
        valid = evaluate(
            model, self.task.loader("valid", batch_size), (metric,), self.config.device
        )
        device = self.config.device
        if device.startswith("cuda"):
            device = f"{device} ({torch.cuda.get_device_name()})"
        return WeightingResult(
            strategy="tapweight" if self.config.mode == "tlo" else "tapweight_blo",
            objective_names=self.objective_names,
            weights=self.logits.weights().detach().tolist(),
            trajectory=trajectory,
            cost=Cost(
                wall_clock_s=wall_clock,
                device=device,
                passes={name: level.passes for name, level in self.levels.items()},
                full_trainings=1,
            ),
            native_scores={f"valid_{metric}": valid[metric]},
            settings=self.config.model_dump(),
            encoder=self.encoder_under_training(),
        )
