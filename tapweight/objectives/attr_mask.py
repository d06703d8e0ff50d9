"""Attribute masking (Hu et al. 2020): hide atom types, predict them from the context."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tapweight.data.featurize import MASK_ATOM_INDEX
from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective
from tapweight.objectives.graph_views import view_of

__all__ = ["AttributeMasking"]


class AttributeMasking(Objective):
    """Cross-entropy of the masked atoms' types (119 real atom indices)."""

    name = "attr_mask"
    domain = "molecule"

    def __init__(self, encoder: nn.Module, mask_rate: float = 0.15) -> None:
        super().__init__()
        self.mask_rate = mask_rate
        self.head = nn.Linear(as_encoder(encoder).out_dim, MASK_ATOM_INDEX)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        view = view_of(batch)
        n = view.x.size(0)
        picked = torch.randperm(n, device=view.x.device)[: max(1, int(round(n * self.mask_rate)))]
        target = view.x[picked, 0]
        x = view.x.clone()
        x[picked] = torch.tensor([MASK_ATOM_INDEX, 0], device=x.device)
        states = encoder(view._replace(x=x))
        return F.cross_entropy(self.head(states[picked]), target)
