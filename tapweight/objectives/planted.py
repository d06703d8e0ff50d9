"""Two objectives whose worth is known by construction, to check that a weighting method works.

``planted_noise`` predicts a random label drawn once per molecule (a hash of its SMILES with a
fixed seed): no structure to learn, so weight on it is wasted or harmful. ``planted_task`` is
Hu et al.'s supervised pretraining on the downstream task's *training* labels: it can only help.
A method that finds the answer puts its weight on the second and not the first
(``bench/planted_objective.py``). ``planted_task`` needs the task's own training split as the
corpus (``corpus: task``); it never sees validation or test labels, which are not in it.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from tapweight.errors import ConfigError
from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective

__all__ = ["PlantedNoise", "PlantedTask", "noise_label", "MAX_TASKS"]

NOISE_SEED = 0
MAX_TASKS = 32
"""Tasks ``planted_task`` can predict (MoleculeNet's BBBP…ClinTox have 1–2; Tox21 12)."""


def noise_label(smiles: str, seed: int = NOISE_SEED) -> float:
    """A fair coin per molecule, the same in every run and process (not Python's salted hash)."""
    return float(hashlib.sha256(f"{seed}:{smiles}".encode()).digest()[0] & 1)


def _pooled(encoder: nn.Module, batch) -> Tensor:
    return global_mean_pool(encoder(batch), batch.batch, size=int(batch.num_graphs))


class PlantedNoise(Objective):
    """Binary cross-entropy against a random label per molecule."""

    name = "planted_noise"
    domain = "molecule"

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.head = nn.Linear(as_encoder(encoder).out_dim, 1)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        smiles = getattr(batch, "smiles", None)
        if smiles is None:
            raise ConfigError("planted_noise needs each molecule's SMILES in the batch")
        labels = torch.tensor([noise_label(s) for s in smiles], device=batch.x.device)
        logits = self.head(_pooled(encoder, batch)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, labels)


class PlantedTask(Objective):
    """The task's own training labels: binary cross-entropy where every label is 0 or 1
    (classification), Huber loss otherwise (regression, robust to the target's scale); missing
    labels are masked out."""

    name = "planted_task"
    domain = "molecule"

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.head = nn.Linear(as_encoder(encoder).out_dim, MAX_TASKS)

    def loss(self, encoder: nn.Module, batch) -> Tensor:
        labels = getattr(batch, "y", None)
        if labels is None:
            raise ConfigError(
                "planted_task reads the downstream task's training labels: use `corpus: task`"
            )
        labels = labels.view(int(batch.num_graphs), -1).float()
        tasks = labels.size(1)
        if tasks > MAX_TASKS:
            raise ConfigError(f"planted_task predicts up to {MAX_TASKS} tasks, not {tasks}")
        known = ~torch.isnan(labels)
        predicted = self.head(_pooled(encoder, batch))[:, :tasks][known]
        target = labels[known]
        if target.numel() == 0:
            return predicted.sum() * 0.0
        if bool(((target == 0) | (target == 1)).all()):
            return F.binary_cross_entropy_with_logits(predicted, target)
        return F.smooth_l1_loss(predicted, target)
