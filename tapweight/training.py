"""What every training loop here shares: its optimizer, moving a batch, one guarded descent step,
and passes that must leave a model's state as it was."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

from tapweight.errors import TrainingError

__all__ = ["OptimizerName", "build_optimizer", "buffers_kept", "descend", "to_device"]

OptimizerName = Literal["sgd", "adam", "adamw"]


def build_optimizer(
    name: OptimizerName,
    params: Iterable[Tensor],
    lr: float,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    adam_eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The optimizer of every loop here (continued pretraining, finetuning, TapWeight's levels),
    so one setting name means the same update everywhere.

    ``momentum`` applies to SGD only and ``adam_eps`` to Adam and AdamW only; ``weight_decay``
    is L2 in the gradient for SGD and Adam, decoupled for AdamW (as in torch).
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    adam = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return adam(params, lr=lr, weight_decay=weight_decay, eps=adam_eps)


def to_device(batch, device: str | torch.device):
    """A text batch (dict of tensors) or a PyG batch on ``device``."""
    if isinstance(batch, dict):
        return {k: v.to(device) for k, v in batch.items()}
    return batch.to(device)


def descend(
    optimizer: torch.optim.Optimizer, loss: Tensor, what: str, max_grad_norm: float | None = None
) -> None:
    """One optimizer step on ``loss``; a non-finite loss stops training, naming ``what``.

    ``max_grad_norm`` clips the gradient of all the optimizer's parameters together first, as
    the baselines' reference code does before each step."""
    if not torch.isfinite(loss):
        raise TrainingError(f"{what}: the loss became {loss.item()}; lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()


@contextmanager
def buffers_kept(module: nn.Module) -> Iterator[None]:
    """Run a pass in train mode (batch statistics, dropout) without letting it move any buffer
    of ``module`` (BatchNorm running statistics and counts): a validation or re-evaluation
    pass must not leave its inputs in the model."""
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        for buffer, value in saved:
            if not torch.equal(buffer, value):  # train-mode statistics: not saved for backward
                buffer.data.copy_(value)  # .data: no version bump on a tensor autograd holds
