"""META-TARTAN (Dery et al., ICLR 2022): end-task aware training with meta-learned weights.

Instead of pretraining and then finetuning, one encoder is trained on the end task and the
auxiliary objectives together. Each step scores every task by how well its gradient on the
shared encoder agrees with the gradient of a *dev head*: a linear head fitted afresh on a
validation batch over the current (frozen) features. The cosine is a first-order estimate of
how much a step on that task lowers the validation loss, so it is added to the task's logit;
the losses are mixed with the softmax of the logits (public code: ldery/TARTAN).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from baselines.base import Budget, ProgressCallback, Strategy
from tapweight.budget import pretrain_step_taken
from tapweight.components import Components
from tapweight.data.batches import ResumableBatches
from tapweight.downstream.finetuning import evaluate
from tapweight.downstream.heads import TaskModel, batch_targets, task_loss
from tapweight.errors import ConfigError, TrainingError
from tapweight.result import Cost, TrajectoryPoint, WeightingResult
from tapweight.training import buffers_kept, to_device

__all__ = ["MetaTartan"]

Grads = Sequence[Tensor | None]


def _cosine(a: Grads, b: Grads) -> float:
    """Cosine of two gradients flattened over the parameters where both exist."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return 0.0
    dot = sum((x * y).sum() for x, y in pairs)
    norm_a = torch.sqrt(sum((x * x).sum() for x, _ in pairs))
    norm_b = torch.sqrt(sum((y * y).sum() for _, y in pairs))
    return float(dot / (norm_a * norm_b + 1e-8))


class MetaTartan(Strategy):
    """Joint end-task + auxiliary training whose weights follow dev-gradient alignment.

    The reported weights are the auxiliary weights renormalised over ``parts.objectives`` (the
    harness retrains every strategy on auxiliaries only); the end-task weight goes to
    ``settings["task_weight"]``, and the jointly trained task model gives ``native_scores``.
    """

    name = "meta_tartan"
    requires_validation = True

    def __init__(
        self,
        *,
        seed: int = 0,
        meta_lr: float = 1e-2,
        dev_head_lr: float = 1e-3,
        dev_head_weight_decay: float = 0.1,
        dev_head_tol: float = 1e-3,
        dev_head_max_steps: int = 50,
        include_task_weight: bool = True,
    ) -> None:
        super().__init__(seed=seed)
        positive = {"meta_lr": meta_lr, "dev_head_lr": dev_head_lr, "dev_head_tol": dev_head_tol}
        for field, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{field} must be positive, got {value}")
        if not dev_head_weight_decay >= 0:
            raise ConfigError(f"dev_head_weight_decay must be >= 0, got {dev_head_weight_decay}")
        if isinstance(dev_head_max_steps, bool) or not isinstance(dev_head_max_steps, int):
            raise ConfigError(f"dev_head_max_steps must be an integer, got {dev_head_max_steps!r}")
        if dev_head_max_steps < 1:
            raise ConfigError(f"dev_head_max_steps must be at least 1, got {dev_head_max_steps}")
        self.meta_lr, self.dev_head_lr = meta_lr, dev_head_lr
        self.dev_head_weight_decay, self.dev_head_tol = dev_head_weight_decay, dev_head_tol
        self.dev_head_max_steps, self.include_task_weight = dev_head_max_steps, include_task_weight

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return 1  # one joint run of total_pretrain_steps steps, however short

    def _dev_gradient(self, model: TaskModel, batch: Any) -> tuple[Grads, float, int]:
        """Fit a fresh linear head on frozen features of a validation batch, then return
        ``∇_encoder L_dev`` with that head fixed (plus the dev loss and the head's steps).

        A fresh head measures what the current features already offer the end task, free of
        the jointly trained head's own drift (the paper's dev head)."""
        with buffers_kept(model):  # a dev batch must not move BatchNorm statistics
            features = model.encoder.embed(batch)
        y, mask = batch_targets(batch)
        if model.task_type == "regression":
            y = (y - model.target_mean) / model.target_std
        head = nn.Linear(features.shape[-1], model.head.out_features).to(features.device)
        optimizer = torch.optim.AdamW(
            head.parameters(), lr=self.dev_head_lr, weight_decay=self.dev_head_weight_decay
        )
        frozen, previous, steps = features.detach(), float("inf"), 0
        while steps < self.dev_head_max_steps:
            loss = task_loss(model.task_type, head(frozen), y, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if abs(previous - loss.item()) < self.dev_head_tol:
                break
            previous = loss.item()
        head.requires_grad_(False)
        dev_loss = task_loss(model.task_type, head(features), y, mask)
        params = list(model.encoder.parameters())
        return torch.autograd.grad(dev_loss, params, allow_unused=True), dev_loss.item(), steps

    def _mixture(self, logits: Tensor) -> list[float]:
        """Loss weights ``[end task, *auxiliaries]``; the end task stays at 1 when unweighted."""
        weights = torch.softmax(logits, dim=0).tolist()
        return weights if self.include_task_weight else [1.0, *weights]

    def _settings(self) -> dict[str, float | int | bool]:
        keys = ("seed", "meta_lr", "dev_head_lr", "dev_head_weight_decay", "dev_head_tol")
        settings = {key: getattr(self, key) for key in keys}
        return {
            **settings,
            "dev_head_max_steps": self.dev_head_max_steps,
            "include_task_weight": self.include_task_weight,
        }

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        start, config, task = time.perf_counter(), budget.pretrain, parts.task
        steps, device = budget.total_pretrain_steps, config.device
        torch.manual_seed(self.seed)
        mean, std = task.train_target_stats() if task.task_type == "regression" else (None, None)
        model = TaskModel(copy.deepcopy(parts.encoder), task.task_type, task.num_outputs, mean, std)
        model, objectives = model.to(device).train(), copy.deepcopy(parts.objectives).to(device)
        objectives.train()
        encoder_params = list(model.encoder.parameters())
        names = [objective.name for objective in objectives]
        params = [*encoder_params, *model.head.parameters(), *objectives.parameters()]
        optimizer = config.make_optimizer(params)
        corpus = ResumableBatches(parts.corpus, config.batch_size, self.seed, parts.corpus_collate)
        train = ResumableBatches(task.train, config.batch_size, self.seed + 1, task.collate)
        valid = ResumableBatches(task.valid, config.batch_size, self.seed + 2, task.collate)
        # one logit per weighted task: the end task's first (when weighted), then the auxiliaries
        offset = 1 if self.include_task_weight else 0
        logits = torch.zeros(offset + len(objectives))
        every, trajectory, dev_head_steps = max(1, steps // 20), [], 0
        progress = None if config.progress else True
        for step in (bar := tqdm(range(steps), desc="meta-tartan", disable=progress, leave=False)):
            dev_batch = to_device(next(valid), device)
            dev_grads, dev_loss, fitted = self._dev_gradient(model, dev_batch)
            dev_head_steps += fitted
            corpus_batch = to_device(next(corpus), device)
            losses = [model.loss(to_device(next(train), device))]
            losses += [objective.loss(model.encoder, corpus_batch) for objective in objectives]
            if not all(torch.isfinite(loss) for loss in losses):
                raise TrainingError(f"a loss became non-finite at step {step}; lower the lr")
            grads = [torch.autograd.grad(loss, params, allow_unused=True) for loss in losses]
            cosines = [_cosine(dev_grads, g[: len(encoder_params)]) for g in grads]
            logits += self.meta_lr * torch.tensor(cosines[1 - offset :])
            mix = self._mixture(logits)
            for i, param in enumerate(params):  # Σ_k w_k ∇L_k is the gradient of Σ_k w_k L_k
                terms = [w * g[i] for w, g in zip(mix, grads, strict=True) if g[i] is not None]
                param.grad = torch.stack(terms).sum(0) if terms else None
            optimizer.step()
            pretrain_step_taken()
            bar.set_postfix(task_weight=f"{mix[0]:.3f}", dev_loss=f"{dev_loss:.3f}")
            if (step + 1) % every == 0 or step + 1 == steps:
                point = TrajectoryPoint(
                    step=step + 1,
                    weights=torch.softmax(logits[offset:], dim=0).tolist(),
                    objective_losses={n: v.item() for n, v in zip(names, losses[1:], strict=True)},
                    metrics={
                        "task_weight": mix[0],
                        "task_loss": losses[0].item(),
                        "dev_loss": dev_loss,
                        "cos_task": cosines[0],
                        **{f"cos_{n}": c for n, c in zip(names, cosines[1:], strict=True)},
                    },
                )
                trajectory.append(point)
                if callback:
                    callback(point)
        native = {  # the jointly trained task model, on validation (test is the protocol's)
            f"valid_{task.metric}": evaluate(
                model, task.loader("valid", config.batch_size), (task.metric,), device
            )[task.metric]
        }
        return WeightingResult(
            strategy=self.name,
            objective_names=names,
            weights=torch.softmax(logits[offset:], dim=0).tolist(),
            trajectory=trajectory,
            cost=Cost(
                wall_clock_s=time.perf_counter() - start,
                device=str(device),
                passes={"joint": steps, "dev_head": dev_head_steps},
                full_trainings=1,
            ),
            native_scores=native,
            encoder=model.encoder,
            settings={**self._settings(), "steps": steps, "task_weight": self._mixture(logits)[0]},
        )
