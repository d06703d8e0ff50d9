"""A synthetic task where the useful objective is known.

Inputs x ~ N(0, I_d); the downstream target is y = x·w* + noise, seen on few labeled examples.
The encoder is a bias-free linear map to ONE feature, so objectives compete for it:
objective 0 predicts x·w* (the downstream signal), objective 1 predicts x·u with u ⊥ w*
(a real but unrelated feature), objective 2 predicts pure noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, default_collate

from tapweight.downstream import DownstreamTask
from tapweight.objectives.base import Objective, Objectives


class LinearEncoder(nn.Module):
    def __init__(self, dim_in: int, dim_out: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out, bias=False)
        self.out_dim = dim_out

    def forward(self, batch):
        return self.linear(batch["x"])

    def embed(self, batch):
        return self(batch)


class TargetObjective(Objective):
    """MSE of the encoder's feature against one column of ``targets``.

    No head: with a trainable scalar head the feature's sign would be arbitrary, and the
    alignment between objectives and the downstream loss with it. The optimum of objective
    ``c`` alone is the direction that generated its column (w*, u, or 0 for noise).
    """

    name = "target"
    domain = "synthetic"

    def __init__(self, encoder: nn.Module, column: int) -> None:
        super().__init__()
        self.name = f"target{column}"  # instance name: one class serves every column
        self.column = column

    def loss(self, encoder, batch):
        return F.mse_loss(encoder(batch).squeeze(-1), batch["targets"][:, self.column])


class Rows(Dataset):
    def __init__(self, **columns: torch.Tensor) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.columns.items()}


def make_problem(dim: int = 8, corpus: int = 512, train: int = 16, valid: int = 256, seed: int = 0):
    """Encoder, three objectives, unlabeled corpus and a regression task."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g)
    w /= w.norm()
    u = torch.randn(dim, generator=g)
    u -= (u @ w) * w
    u /= u.norm()

    def labeled(n: int) -> Rows:
        x = torch.randn(n, dim, generator=g)
        return Rows(x=x, labels=x @ w + 0.3 * torch.randn(n, generator=g))

    x = torch.randn(corpus, dim, generator=g)
    targets = torch.stack([x @ w, x @ u, torch.randn(corpus, generator=g)], dim=1)
    torch.manual_seed(seed)
    encoder = LinearEncoder(dim)
    objectives = Objectives(TargetObjective(encoder, c) for c in range(3))
    task = DownstreamTask(
        name="synthetic",
        task_type="regression",
        metric="rmse",
        num_outputs=1,
        train=labeled(train),
        valid=labeled(valid),
        test=labeled(valid),
        collate=default_collate,
    )
    return encoder, objectives, Rows(x=x, targets=targets), task
