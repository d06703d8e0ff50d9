"""GraphCL (You et al. 2020): agree on two augmented views of the same molecule (NT-Xent)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from tapweight.errors import ConfigError
from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective
from tapweight.objectives.graph_views import AUGMENTATIONS, view_of

__all__ = ["GraphCL", "nt_xent"]


def nt_xent(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Normalised-temperature cross-entropy: view i of ``a`` must pick view i of ``b``."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t() / temperature
    targets = torch.arange(a.size(0), device=a.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


class GraphCL(Objective):
    """Contrastive loss between two augmentations drawn from ``augmentations`` per step."""

    name = "graphcl"
    domain = "molecule"

    def __init__(
        self,
        encoder: nn.Module,
        augmentations: tuple[str, ...] = ("drop_nodes", "drop_edges", "mask_nodes"),
        rate: float = 0.2,
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        unknown = [a for a in augmentations if a not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(
                f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}"
            )
        self.augmentations, self.rate, self.temperature = augmentations, rate, temperature
        dim = as_encoder(encoder).out_dim
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def _embed(self, encoder: nn.Module, view) -> Tensor:
        # drawn from torch's RNG so that torch.manual_seed makes a run reproducible
        augment = AUGMENTATIONS[self.augmentations[int(torch.randint(len(self.augmentations), ()))]]
        view = augment(view, self.rate)
        pooled = global_mean_pool(encoder(view), view.batch, size=view.num_graphs)
        return self.head(pooled)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        view = view_of(batch)
        return nt_xent(self._embed(encoder, view), self._embed(encoder, view), self.temperature)
