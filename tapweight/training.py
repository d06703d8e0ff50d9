"""The two steps every training loop here shares: moving a batch, and one guarded descent step."""

from __future__ import annotations

import torch
from torch import Tensor

from tapweight.errors import TrainingError

__all__ = ["descend", "to_device"]


def to_device(batch, device: str | torch.device):
    """A text batch (dict of tensors) or a PyG batch on ``device``."""
    if isinstance(batch, dict):
        return {k: v.to(device) for k, v in batch.items()}
    return batch.to(device)


def descend(optimizer: torch.optim.Optimizer, loss: Tensor, what: str) -> None:
    """One optimizer step on ``loss``; a non-finite loss stops training, naming ``what``."""
    if not torch.isfinite(loss):
        raise TrainingError(f"{what}: the loss became {loss.item()}; lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
