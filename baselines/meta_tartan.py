"""META-TARTAN (Dery et al., ICLR 2022): end-task aware training with meta-learned weights.

Instead of pretraining and then finetuning, one encoder is trained on the end task and the
auxiliary objectives together. Each task's gradient on the shared encoder is scored by its
cosine with the gradient of a *dev head*: a small MLP fitted afresh, once per optimizer step,
on one validation sample over the current features, whose gradient is then taken on a fresh
validation sample. The cosine is a first-order estimate of how much a step on that task lowers
the validation loss, so it is added to the task's logit; the losses are mixed with the softmax
of the logits.

The order is the public code's (github ldery/TARTAN, ``scripts/run_mlm_auxiliary.py``,
``scripts/endtask_aware.py``, ``scripts/alpha_generator.py``; ``docs/baselines.md`` maps each
line): a step's gradients are mixed with the weights it started with, accumulated over
``grad_accum_steps`` micro-batches, clipped, applied, and only then do the logits move by the
window's mean cosine. One budget step is one optimizer step, i.e. ``grad_accum_steps``
micro-batches of the end task and of the corpus. The paper's scale (RoBERTa-base, 150 epochs)
is far above ours (small encoders, a few hundred steps).
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
from tapweight.models.base import as_encoder
from tapweight.result import Cost, TrajectoryPoint, WeightingResult
from tapweight.training import buffers_kept, to_device

__all__ = ["MetaTartan"]

Grads = Sequence[Tensor | None]
DEV_HEAD_BETAS = (0.9, 0.98)  # run_mlm_auxiliary.py:762 (classf_betas), endtask_aware.py:247


def _cosine(a: Grads, b: Grads) -> float:
    """Cosine of two gradients flattened over the parameters where both exist."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return 0.0
    zero = pairs[0][0].new_zeros(())  # a tensor start, so each sum is a tensor (0 + t is t)
    dot = sum(((x * y).sum() for x, y in pairs), zero)
    norm_a = torch.sqrt(sum(((x * x).sum() for x, _ in pairs), zero))
    norm_b = torch.sqrt(sum(((y * y).sum() for _, y in pairs), zero))
    return float(dot / (norm_a * norm_b + 1e-8))


def _dev_head(dim: int, outputs: int, dropout: float) -> nn.Sequential:
    """The reference's classifier head: dropout, one tanh layer of the feature width with
    dropout (allennlp ``FeedForward``), then the output layer."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(dim, dim), nn.Tanh(), nn.Dropout(dropout),
        nn.Linear(dim, outputs),
    )  # fmt: skip


class _TaskWeights:
    """Logits of the weighted tasks (``[end task, *auxiliaries]``, or the auxiliaries alone)
    and the meta-gradient gathered over one accumulation window (the reference's
    ``MetaWeighter``)."""

    def __init__(self, auxiliaries: int, meta_lr: float, accum: int, weigh_task: bool) -> None:
        self.offset = 1 if weigh_task else 0
        self.logits = torch.zeros(self.offset + auxiliaries)  # equal: uniform start
        self.meta_grad = torch.zeros_like(self.logits)
        self.meta_lr, self.accum = meta_lr, accum

    def mixture(self) -> list[float]:
        """Loss weights ``[end task, *auxiliaries]``; the end task stays at 1 when unweighted."""
        weights = torch.softmax(self.logits, dim=0).tolist()
        return weights if self.offset else [1.0, *weights]

    def auxiliary(self) -> list[float]:
        return torch.softmax(self.logits[self.offset :], dim=0).tolist()

    def accumulate(
        self, params: Sequence[Tensor], grads: Sequence[Grads], dev_grads: Grads, shared: int
    ) -> list[float]:
        """Add one micro-batch: ``Σ_k w_k ∇L_k / accum`` to ``params``' gradients with the
        CURRENT weights, and ``-cos_k / accum`` to the meta-gradient; returns the cosines of
        ``grads`` (end task first) with ``dev_grads`` over the first ``shared`` parameters."""
        mix = self.mixture()
        cosines = [_cosine(dev_grads, g[:shared]) for g in grads]
        self.meta_grad -= torch.tensor(cosines[1 - self.offset :]) / self.accum
        for i, param in enumerate(params):
            terms = [
                w * grad for w, g in zip(mix, grads, strict=True) if (grad := g[i]) is not None
            ]
            if terms:
                added = torch.stack(terms).sum(0) / self.accum
                param.grad = added if param.grad is None else param.grad + added
        return cosines

    def step(self) -> None:
        """Descend the gathered meta-gradient (after the optimizer step) and start a window."""
        self.logits -= self.meta_lr * self.meta_grad
        self.meta_grad.zero_()


class MetaTartan(Strategy):
    """Joint end-task + auxiliary training whose weights follow dev-gradient alignment.

    The reported weights are the auxiliary weights renormalised over ``parts.objectives`` (the
    harness retrains every strategy on auxiliaries only); the end-task weight, which is not an
    objective weight, is ``result.task_weight``, and the jointly trained task model gives
    ``native_scores``.
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
        dev_head_dropout: float = 0.1,
        dev_head_tol: float = 1e-3,
        dev_head_max_steps: int = 10,
        grad_accum_steps: int = 2,
        max_grad_norm: float | None = 1.0,
        include_task_weight: bool = True,
    ) -> None:
        super().__init__(seed=seed)
        positive = {"meta_lr": meta_lr, "dev_head_lr": dev_head_lr, "dev_head_tol": dev_head_tol}
        for field, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{field} must be positive, got {value}")
        if not dev_head_weight_decay >= 0:
            raise ConfigError(f"dev_head_weight_decay must be >= 0, got {dev_head_weight_decay}")
        if not 0 <= dev_head_dropout < 1:
            raise ConfigError(f"dev_head_dropout must be in [0, 1), got {dev_head_dropout}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
        counts = {"dev_head_max_steps": dev_head_max_steps, "grad_accum_steps": grad_accum_steps}
        for field, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{field} must be an integer, got {value!r}")
            if value < 1:
                raise ConfigError(f"{field} must be at least 1, got {value}")
        self.meta_lr, self.dev_head_lr = meta_lr, dev_head_lr
        self.dev_head_weight_decay, self.dev_head_dropout = dev_head_weight_decay, dev_head_dropout
        self.dev_head_tol, self.dev_head_max_steps = dev_head_tol, dev_head_max_steps
        self.grad_accum_steps, self.max_grad_norm = grad_accum_steps, max_grad_norm
        self.include_task_weight = include_task_weight

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return 1  # one joint run of total_pretrain_steps steps, however short

    @property
    def settings(self) -> dict[str, Any]:
        keys = (
            "seed", "meta_lr", "dev_head_lr", "dev_head_weight_decay", "dev_head_dropout",
            "dev_head_tol", "dev_head_max_steps", "grad_accum_steps", "max_grad_norm",
            "include_task_weight",
        )  # fmt: skip
        return {key: getattr(self, key) for key in keys}

    def _targets(self, model: TaskModel, batch: Any) -> tuple[Tensor, Tensor]:
        y, mask = batch_targets(batch)
        if model.task_type == "regression":
            y = (y - model.target_mean) / model.target_std
        return y, mask

    def _fit_dev_head(self, model: TaskModel, batch: Any) -> tuple[nn.Module, int]:
        """A fresh dev head fitted on the frozen features of one validation sample, for at most
        ``dev_head_max_steps`` steps (fewer once the loss moves less than ``dev_head_tol``).

        A fresh head measures what the current features already offer the end task, free of
        the jointly trained head's own drift (the paper's dev head)."""
        with torch.no_grad(), buffers_kept(model):  # a dev batch must not move BatchNorm stats
            features = as_encoder(model.encoder).embed(batch)
        y, mask = self._targets(model, batch)
        head = _dev_head(features.shape[-1], model.head.out_features, self.dev_head_dropout)
        head = head.to(features.device).train()
        optimizer = torch.optim.AdamW(
            head.parameters(), lr=self.dev_head_lr, betas=DEV_HEAD_BETAS,
            weight_decay=self.dev_head_weight_decay,
        )  # fmt: skip
        previous, steps = float("inf"), 0
        while steps < self.dev_head_max_steps:
            loss = task_loss(model.task_type, head(features), y, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if abs(previous - loss.item()) < self.dev_head_tol:
                break
            previous = loss.item()
        return head.requires_grad_(False), steps

    def _dev_gradient(self, model: TaskModel, head: nn.Module, batch: Any) -> tuple[Grads, float]:
        """``∇_encoder L_dev`` through the fitted (fixed) head on a fresh validation sample,
        and the dev loss; the pass leaves the model's buffers as they were."""
        with buffers_kept(model):
            features = as_encoder(model.encoder).embed(batch)
        y, mask = self._targets(model, batch)
        dev_loss = task_loss(model.task_type, head(features), y, mask)
        params = list(model.encoder.parameters())
        return torch.autograd.grad(dev_loss, params, allow_unused=True), dev_loss.item()

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        start, config, task = time.perf_counter(), budget.pretrain, parts.task
        steps, device, accum = budget.total_pretrain_steps, config.device, self.grad_accum_steps
        torch.manual_seed(self.seed)
        mean, std = task.train_target_stats() if task.task_type == "regression" else (None, None)
        model = TaskModel(copy.deepcopy(parts.encoder), task.task_type, task.num_outputs, mean, std)
        model, objectives = model.to(device).train(), copy.deepcopy(parts.objectives).to(device)
        objectives.train()
        shared = len(list(model.encoder.parameters()))
        names = [objective.name for objective in objectives]
        body = [*model.encoder.parameters(), *objectives.parameters()]
        head_params = list(model.head.parameters())
        params = [*model.encoder.parameters(), *head_params, *objectives.parameters()]
        optimizer = config.make_optimizer(params)
        corpus = ResumableBatches(parts.corpus, config.batch_size, self.seed, parts.corpus_collate)
        train = ResumableBatches(task.train, config.batch_size, self.seed + 1, task.collate)
        valid = ResumableBatches(task.valid, config.batch_size, self.seed + 2, task.collate)
        weights = _TaskWeights(len(names), self.meta_lr, accum, self.include_task_weight)
        every, trajectory, dev_head_steps = max(1, steps // 20), [], 0
        progress = None if config.progress else True
        for step in (bar := tqdm(range(steps), desc="meta-tartan", disable=progress, leave=False)):
            head, fitted = self._fit_dev_head(model, to_device(next(valid), device))
            dev_head_steps += fitted
            optimizer.zero_grad(set_to_none=True)
            for _ in range(accum):
                dev_batch = to_device(next(valid), device)  # fresh: not the one fitted on
                dev_grads, dev_loss = self._dev_gradient(model, head, dev_batch)
                corpus_batch = to_device(next(corpus), device)
                losses = [model.loss(to_device(next(train), device))]
                losses += [objective.loss(model.encoder, corpus_batch) for objective in objectives]
                if not all(torch.isfinite(loss) for loss in losses):
                    raise TrainingError(f"a loss became non-finite at step {step}; lower the lr")
                grads = [torch.autograd.grad(loss, params, allow_unused=True) for loss in losses]
                cosines = weights.accumulate(params, grads, dev_grads, shared)
            if self.max_grad_norm is not None:  # the body with the objectives' heads; task head
                nn.utils.clip_grad_norm_(body, self.max_grad_norm)
                nn.utils.clip_grad_norm_(head_params, self.max_grad_norm)
            optimizer.step()
            pretrain_step_taken()
            weights.step()
            task_weight = weights.mixture()[0]
            bar.set_postfix(task_weight=f"{task_weight:.3f}", dev_loss=f"{dev_loss:.3f}")
            if (step + 1) % every == 0 or step + 1 == steps:
                point = TrajectoryPoint(
                    step=step + 1,
                    weights=weights.auxiliary(),
                    objective_losses={n: v.item() for n, v in zip(names, losses[1:], strict=True)},
                    metrics={
                        "task_weight": task_weight,
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
            weights=weights.auxiliary(),
            task_weight=weights.mixture()[0],
            trajectory=trajectory,
            cost=Cost(
                wall_clock_s=time.perf_counter() - start,
                device=str(device),
                passes={"joint": steps * accum, "dev_head": dev_head_steps},
                full_trainings=1,
            ),
            native_scores=native,
            encoder=model.encoder,
            settings={**self.settings, "steps": steps},
        )
