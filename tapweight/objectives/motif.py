"""Motif prediction: which of RDKit's 85 functional-group patterns a molecule contains.

A graph-level, chemistry-aware objective (in the spirit of GROVER's motif task); labels come
from the featurizer (``HuFeaturizer(motifs=True)``), so no extra work happens per step.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from tapweight.data.featurize import NUM_MOTIFS
from tapweight.errors import ConfigError
from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective

__all__ = ["MotifPrediction"]


class MotifPrediction(Objective):
    """Multi-label BCE on the pooled graph representation."""

    name = "motif"
    domain = "molecule"

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.head = nn.Linear(as_encoder(encoder).out_dim, NUM_MOTIFS)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        motifs = getattr(batch, "motifs", None)
        if motifs is None:
            raise ConfigError(
                "the motif objective needs motif labels: featurize with HuFeaturizer(motifs=True)"
            )
        pooled = global_mean_pool(encoder(batch), batch.batch, size=int(batch.num_graphs))
        return F.binary_cross_entropy_with_logits(self.head(pooled), motifs)
