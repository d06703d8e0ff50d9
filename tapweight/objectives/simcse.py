"""Unsupervised SimCSE (Gao et al. 2021): one text encoded twice under dropout is a positive."""

from __future__ import annotations

from torch import Tensor, nn

from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective
from tapweight.objectives.graphcl import nt_xent

__all__ = ["SimCSE"]


class SimCSE(Objective):
    """InfoNCE between two dropout-noised encodings of each text (in-batch negatives)."""

    name = "simcse"
    domain = "text"

    def __init__(self, encoder: nn.Module, tokenizer=None, temperature: float = 0.05) -> None:
        super().__init__()
        self.temperature = temperature
        dim = as_encoder(encoder).out_dim
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())

    def loss(self, encoder: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        embed = as_encoder(encoder).embed
        first, second = self.head(embed(batch)), self.head(embed(batch))
        return nt_xent(first, second, self.temperature)
