"""Continued pretraining on a weighted sum of objectives with fixed weights.

This is the loop behind the static strategies (uniform, single objective) and the fair final
protocol that retrains every strategy's weights; TapWeight's bottom level uses the same
:func:`weighted_loss`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from tqdm.auto import tqdm

from tapweight.budget import pretrain_step_taken
from tapweight.data.batches import ResumableBatches
from tapweight.errors import ConfigError
from tapweight.training import build_optimizer, descend, to_device

if TYPE_CHECKING:
    from tapweight.objectives.base import Objectives

__all__ = [
    "PretrainConfig",
    "PretrainResult",
    "continued_pretrain",
    "weighted_loss",
    "normalize_weights",
    "pretrain_descend",
]


class PretrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    steps: int = Field(100, ge=1)
    batch_size: int = Field(
        64, ge=2, description="contrastive objectives need two or more examples"
    )
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def make_optimizer(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        """The optimizer every continued-pretraining loop uses (SGD with momentum 0.9, or Adam)."""
        return build_optimizer(self.optimizer, params, self.lr, momentum=0.9)


@dataclass
class PretrainResult:
    weights: list[float]
    objective_names: list[str]
    losses: list[dict[str, float]] = field(default_factory=list)
    forward_backward_passes: int = 0


def normalize_weights(weights: Sequence[float], count: int) -> list[float]:
    """Check ``weights`` against the objectives and put them on the simplex."""
    if len(weights) != count:
        raise ConfigError(f"{len(weights)} weights given for {count} objectives")
    if any(w < 0 or w != w for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def weighted_loss(
    encoder: nn.Module, objectives: Objectives, weights: Tensor | Sequence[float], batch: Any
) -> tuple[Tensor, dict[str, float]]:
    """``sum_i w_i L_i`` over objectives with a non-zero weight, plus each ``L_i`` as a float."""
    total = None
    parts: dict[str, float] = {}
    for objective, weight in zip(objectives, weights, strict=True):
        if not isinstance(weight, Tensor) and weight == 0.0:
            continue  # a fixed zero weight changes nothing: skip its forward pass
        loss = objective.loss(encoder, batch)
        parts[objective.name] = loss.item()
        total = weight * loss if total is None else total + weight * loss
    assert total is not None, "normalize_weights guarantees one positive weight"
    return total, parts


def pretrain_descend(
    optimizer: torch.optim.Optimizer, loss: Tensor, what: str, max_grad_norm: float | None = None
) -> None:
    """One continued-pretraining optimizer step, counted against the strategy's budget."""
    descend(optimizer, loss, what, max_grad_norm)
    pretrain_step_taken()


def continued_pretrain(
    encoder: nn.Module,
    objectives: Objectives,
    weights: Sequence[float],
    corpus: Any,
    config: PretrainConfig | None = None,
    collate: Callable | None = None,
) -> PretrainResult:
    """Train ``encoder`` and the objectives' heads in place on ``sum_i w_i L_i`` over ``corpus``."""
    config = config or PretrainConfig()
    weights = normalize_weights(weights, len(objectives))
    if len(corpus) < 2:
        raise ConfigError("the pretraining corpus needs at least two examples")
    torch.manual_seed(config.seed)
    encoder.to(config.device).train()
    objectives.to(config.device).train()
    params = [*encoder.parameters(), *objectives.parameters()]
    optimizer = config.make_optimizer(params)
    result = PretrainResult(weights, [o.name for o in objectives])
    batches = ResumableBatches(corpus, config.batch_size, config.seed, collate)
    bar = tqdm(
        range(config.steps),
        desc="continued pretraining",
        disable=None if config.progress else True,
        leave=False,
    )
    for step in bar:
        batch = to_device(next(batches), config.device)
        loss, parts = weighted_loss(encoder, objectives, weights, batch)
        pretrain_descend(optimizer, loss, f"continued pretraining step {step}")
        result.losses.append(parts)
        result.forward_backward_passes += 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return result
