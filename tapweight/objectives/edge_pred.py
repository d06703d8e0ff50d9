"""Edge prediction (Hu et al. 2020): tell bonded atom pairs from non-bonded pairs.

Negatives are atom pairs drawn inside the same molecule (harder than pairs across molecules)
from torch's RNG, so a seeded run is reproducible (PyG's ``negative_sampling`` draws from
Python's ``random``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective

__all__ = ["EdgePrediction", "negative_pairs"]


def negative_pairs(edge_index: Tensor, batch: Tensor, count: int) -> Tensor:
    """Up to ``count`` pairs ``(u, v)``, ``u != v``, same molecule, not bonded."""
    num_nodes = batch.numel()
    sizes = torch.bincount(batch)
    starts = torch.cumsum(sizes, 0) - sizes
    u = torch.randint(num_nodes, (count,), device=batch.device)
    graph = batch[u]
    v = starts[graph] + (torch.rand(count, device=batch.device) * sizes[graph]).long()
    bonded = torch.isin(u * num_nodes + v, edge_index[0] * num_nodes + edge_index[1])
    keep = (u != v) & ~bonded
    return torch.stack([u[keep], v[keep]])


class EdgePrediction(Objective):
    """Binary cross-entropy on inner products of projected node states."""

    name = "edge_pred"
    domain = "molecule"

    def __init__(self, encoder: nn.Module, max_edges: int = 512) -> None:
        super().__init__()
        self.max_edges = max_edges
        width = as_encoder(encoder).out_dim
        self.head = nn.Linear(width, width)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        states = self.head(encoder(batch))
        src, dst = batch.edge_index
        positive = batch.edge_index[:, src < dst]
        if positive.size(1) > self.max_edges:
            positive = positive[:, torch.randperm(positive.size(1))[: self.max_edges]]
        negative = negative_pairs(batch.edge_index, batch.batch, max(1, positive.size(1)))
        pairs = torch.cat([positive, negative], dim=1)
        scores = (states[pairs[0]] * states[pairs[1]]).sum(-1)
        labels = torch.cat([torch.ones(positive.size(1)), torch.zeros(negative.size(1))])
        return F.binary_cross_entropy_with_logits(scores, labels.to(scores.device))
