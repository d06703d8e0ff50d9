"""Finetuning with an optional proximal term, early stopping and best-on-validation selection.

Model selection reads only the validation split; the test split is evaluated once, at the end,
with the best-on-validation weights. The proximal term ``prox_lam * ||theta - theta_ref||^2``
ties the encoder to a reference encoder (L2-SP); it is TapWeight's link between finetuning and
continued pretraining.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from tqdm.auto import tqdm

from tapweight.downstream.heads import TaskModel, batch_targets
from tapweight.downstream.metrics import is_better, metrics_for, score
from tapweight.downstream.task import DownstreamTask
from tapweight.errors import TrainingError
from tapweight.training import build_optimizer, descend, to_device

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "ProximalKind",
    "finetune",
    "evaluate",
    "proximal_term",
]


class FinetuneConfig(BaseModel):
    """Finetuning settings; defaults follow Hu et al. 2020 scaled down for CPU."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    patience: int | None = Field(
        10, ge=1, description="epochs without validation gain before stopping"
    )
    prox_lam: float = Field(0.0, ge=0, description="weight of ||theta - theta_ref||^2")
    prox_normalize: bool = Field(
        False, description="divide the proximal term by the parameter count"
    )
    max_steps_per_epoch: int | None = Field(None, ge=1)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


@dataclass
class FinetuneResult:
    metric: str
    best_epoch: int
    valid: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    model: TaskModel | None = None

    @property
    def valid_score(self) -> float:
        return self.valid[self.metric]

    @property
    def test_score(self) -> float:
        return self.test[self.metric]


ProximalKind = Literal["l2", "l2_embeddings_l1_encoder"]


def proximal_term(
    model: nn.Module, reference: nn.Module, normalize: bool = False, kind: ProximalKind = "l2"
) -> Tensor:
    """Distance of ``model``'s parameters from ``reference``'s, over parameters of one name.

    ``l2``: ``Σ ||p - p_ref||²``. ``l2_embeddings_l1_encoder`` (TapWeight's text reference):
    squared distance on the embedding parameters plus absolute distance on the encoder
    layers, other parameters (a pooler) left free. ``normalize`` divides by the parameter count.
    """
    ref = dict(reference.named_parameters())
    total = next(model.parameters()).new_zeros(())
    count = 0
    for name, param in model.named_parameters():
        if name not in ref:
            continue
        difference = param - ref[name]
        if kind == "l2" or ".embeddings." in f".{name}":
            total = total + (difference**2).sum()
        elif ".encoder." in f".{name}":
            total = total + difference.abs().sum()
        else:
            continue
        count += param.numel()
    return total / max(count, 1) if normalize else total


@torch.no_grad()
def evaluate(
    model: TaskModel, loader, metrics: tuple[str, ...], device: str = "cpu"
) -> dict[str, float]:
    model.eval()
    ys, preds, masks = [], [], []
    for batch in loader:
        batch = to_device(batch, device)
        y, mask = batch_targets(batch)
        ys.append(y.cpu().numpy())
        masks.append(mask.cpu().numpy())
        preds.append(model.predict(batch).float().cpu().numpy())
    targets, predictions = np.concatenate(ys), np.concatenate(preds)
    observed = np.concatenate(masks)
    return {name: score(name, targets, predictions, observed) for name in metrics}


def finetune(
    encoder: nn.Module,
    task: DownstreamTask,
    config: FinetuneConfig | None = None,
    reference: nn.Module | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    evaluate_test: bool = True,
) -> FinetuneResult:
    """Finetune a copy of ``encoder`` on ``task`` and score it once on test.

    Args:
        encoder: left untouched; a deep copy is trained.
        reference: encoder of the proximal term; defaults to the starting encoder when
            ``prox_lam > 0``.
        on_epoch: called with each epoch's record (train loss, validation metrics); it may
            raise to stop early (e.g. ``optuna.TrialPruned``).
        evaluate_test: False for search trials, which must never see the test split
            (``result.test`` is then empty).

    Example:
        >>> result = finetune(encoder, task, FinetuneConfig(epochs=3))  # doctest: +SKIP
        >>> result.valid_score, result.test_score                       # doctest: +SKIP
    """
    config = config or FinetuneConfig()
    torch.manual_seed(config.seed)
    device = config.device
    mean, std = task.train_target_stats() if task.task_type == "regression" else (None, None)
    model = TaskModel(copy.deepcopy(encoder), task.task_type, task.num_outputs, mean, std).to(
        device
    )
    if config.prox_lam > 0:
        reference = copy.deepcopy(reference if reference is not None else encoder).to(device)
        reference.requires_grad_(False)
    optimizer = build_optimizer(
        config.optimizer,
        model.parameters(),
        config.lr,
        weight_decay=config.weight_decay,
        momentum=0.9,
    )
    metrics = tuple(dict.fromkeys((task.metric, *metrics_for(task.task_type))))
    valid_loader = task.loader("valid", config.batch_size)
    best_state, best_score, best_epoch, stale = None, None, 0, 0
    history: list[dict[str, float]] = []
    epochs = tqdm(
        range(1, config.epochs + 1),
        desc=f"finetune {task.name}",
        disable=None if config.progress else True,
        leave=False,
    )
    for epoch in epochs:
        model.train()
        losses = []
        train_loader = task.loader(
            "train", config.batch_size, shuffle=True, seed=config.seed + epoch
        )
        for step, batch in enumerate(train_loader):
            if config.max_steps_per_epoch and step >= config.max_steps_per_epoch:
                break
            batch = to_device(batch, device)
            loss = model.loss(batch)
            if reference is not None:
                loss = loss + config.prox_lam * proximal_term(
                    model.encoder, reference, config.prox_normalize
                )
            descend(optimizer, loss, f"finetuning epoch {epoch} step {step}")
            losses.append(loss.item())
        valid = evaluate(model, valid_loader, metrics, device)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "steps": len(losses),
            **{f"valid_{k}": v for k, v in valid.items()},
        }
        history.append(record)
        epochs.set_postfix(
            loss=f"{record['train_loss']:.3f}", **{task.metric: f"{valid[task.metric]:.3f}"}
        )
        if on_epoch:
            on_epoch(record)
        if is_better(task.metric, valid[task.metric], best_score):
            best_state, best_score, best_epoch, stale = (
                copy.deepcopy(model.state_dict()),
                valid[task.metric],
                epoch,
                0,
            )
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                break
    if best_state is None:
        raise TrainingError(
            f"validation {task.metric} was never finite on {task.name}; the validation split may "
            "lack one of the classes"
        )
    model.load_state_dict(best_state)
    valid_best = {
        k[len("valid_") :]: v for k, v in history[best_epoch - 1].items() if k.startswith("valid_")
    }
    test = {}
    if evaluate_test:  # the one read of the test split, with the best-on-validation weights
        test = evaluate(model, task.loader("test", config.batch_size), metrics, device)
    return FinetuneResult(task.metric, best_epoch, valid_best, test, history, model)
