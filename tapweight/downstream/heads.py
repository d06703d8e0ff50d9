"""Task heads and their losses, for every task type, with missing labels masked out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tapweight.errors import ConfigError
from tapweight.models.base import as_encoder

__all__ = ["TaskModel", "batch_targets", "task_loss"]


def batch_targets(batch) -> tuple[Tensor, Tensor]:
    """Targets ``[n, tasks]`` and a mask of observed labels, for graph or text batches."""
    if isinstance(batch, dict):
        labels = batch["labels"]
        y = labels.view(-1, 1).to(torch.float)
        return y, torch.ones_like(y, dtype=torch.bool)
    return batch.y, batch.y_mask


def task_loss(task_type: str, output: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Masked BCE (binary), cross-entropy (multiclass) or MSE (regression, standardized units)."""
    if task_type == "binary":
        if not mask.any():
            return output.sum() * 0.0
        safe = torch.where(mask, y, torch.zeros_like(y))  # NaN labels never reach the loss
        losses = F.binary_cross_entropy_with_logits(output, safe, reduction="none")
        return losses[mask].mean()
    if task_type == "multiclass":
        return F.cross_entropy(output, y.view(-1).long())
    if task_type == "regression":
        safe = torch.where(mask, y, torch.zeros_like(y))
        return ((output - safe) ** 2)[mask].mean()
    raise ConfigError(f"unknown task type {task_type!r}")


class TaskModel(nn.Module):
    """Encoder + linear head. Regression targets are standardized with train statistics.

    Args:
        encoder: any module with ``embed(batch)`` and ``out_dim``.
        task_type: ``binary``, ``multiclass`` or ``regression``.
        num_outputs: tasks (binary/regression) or classes (multiclass).
        target_mean, target_std: train-split statistics for regression targets.
    """

    target_mean: Tensor
    target_std: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        task_type: str,
        num_outputs: int,
        target_mean: Tensor | None = None,
        target_std: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.task_type = encoder, task_type
        self.head = nn.Linear(as_encoder(encoder).out_dim, num_outputs)
        self.register_buffer(
            "target_mean", torch.zeros(num_outputs) if target_mean is None else target_mean
        )
        self.register_buffer(
            "target_std", torch.ones(num_outputs) if target_std is None else target_std
        )

    def forward(self, batch) -> Tensor:
        """Raw head output: logits, class scores or standardized regression values."""
        return self.head(as_encoder(self.encoder).embed(batch))

    def loss(self, batch) -> Tensor:
        y, mask = batch_targets(batch)
        if self.task_type == "regression":
            y = (y - self.target_mean) / self.target_std
        return task_loss(self.task_type, self(batch), y, mask)

    def predict(self, batch) -> Tensor:
        """Predictions in the targets' own units (regression) or raw scores (classification)."""
        out = self(batch)
        return out * self.target_std + self.target_mean if self.task_type == "regression" else out
