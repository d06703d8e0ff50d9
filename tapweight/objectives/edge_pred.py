"""Edge prediction (Hu et al. 2020): tell bonded atom pairs from random non-bonded pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import negative_sampling

from tapweight.objectives.base import Objective

__all__ = ["EdgePrediction"]


class EdgePrediction(Objective):
    """Binary cross-entropy on inner products of projected node states."""

    name = "edge_pred"
    domain = "molecule"

    def __init__(self, encoder: nn.Module, max_edges: int = 512) -> None:
        super().__init__()
        self.max_edges = max_edges
        self.head = nn.Linear(encoder.out_dim, encoder.out_dim)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        states = self.head(encoder(batch))
        src, dst = batch.edge_index
        positive = batch.edge_index[:, src < dst]
        if positive.size(1) > self.max_edges:
            positive = positive[:, torch.randperm(positive.size(1))[: self.max_edges]]
        negative = negative_sampling(
            batch.edge_index, num_nodes=states.size(0), num_neg_samples=max(1, positive.size(1))
        )
        pairs = torch.cat([positive, negative], dim=1)
        scores = (states[pairs[0]] * states[pairs[1]]).sum(-1)
        labels = torch.cat([torch.ones(positive.size(1)), torch.zeros(negative.size(1))])
        return F.binary_cross_entropy_with_logits(scores, labels.to(scores.device))
