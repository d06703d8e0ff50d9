"""The TapWeight runner: drives betty's engine over the level graph, records the trajectory,
checkpoints, and hands back the result.

The levels themselves are built in :mod:`tapweight.core.level_graph`; checkpoints are written
and restored by :mod:`tapweight.core.checkpoint`, so a run can stop anywhere and resume exactly.
"""

from __future__ import annotations

import copy
import os
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from tapweight.core import compat, hypergradient
from tapweight.core.checkpoint import (
    CHECKPOINT_NAME,
    checkpoint_state,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from tapweight.core.config import TapWeightConfig
from tapweight.core.level_graph import build_level_graph
from tapweight.core.problems import ObjectiveLogits
from tapweight.downstream.finetuning import evaluate
from tapweight.downstream.task import DownstreamTask
from tapweight.errors import ConfigError, TrainingError
from tapweight.objectives.base import Objectives
from tapweight.result import Cost, TrajectoryPoint, WeightingResult

if TYPE_CHECKING:
    from betty.engine import Engine

__all__ = ["TapWeight", "CHECKPOINT_NAME"]

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
        objectives: Objectives,
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
        self.logits = ObjectiveLogits(len(objectives))
        self.graph = build_level_graph(
            cfg, encoder, copy.deepcopy(objectives), self.logits, corpus, corpus_collate, task
        )
        self.levels, self.downstream = self.graph.levels, self.graph.downstream

    def _engine(self) -> Engine:
        return self.graph.engine(self.config)

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
            state = load_checkpoint(self.checkpoint_path)
            restore_checkpoint(
                state, self.levels, cfg, self.objective_names, self.task.name, self.checkpoint_path
            )
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
                state = checkpoint_state(
                    self.levels, cfg, self.objective_names, self.task.name, step, trajectory,
                    time.perf_counter() - began,
                )  # fmt: skip
                save_checkpoint(state, self.checkpoint_path)
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
            encoder=self.graph.encoder_under_training(),
        )
