"""Continued-pretraining objectives, one module each, behind one :class:`Objective` protocol."""

from __future__ import annotations

from typing import Any

from torch import nn

from tapweight.errors import ConfigError
from tapweight.objectives.attr_mask import AttributeMasking
from tapweight.objectives.base import Objective, Objectives
from tapweight.objectives.edge_pred import EdgePrediction
from tapweight.objectives.graphcl import GraphCL
from tapweight.objectives.mlm import MaskedLanguageModeling
from tapweight.objectives.motif import MotifPrediction
from tapweight.objectives.planted import PlantedNoise, PlantedTask
from tapweight.objectives.simcse import SimCSE
from tapweight.objectives.sop import SentenceOrderPrediction

__all__ = [
    "OBJECTIVES",
    "AttributeMasking",
    "EdgePrediction",
    "GraphCL",
    "MaskedLanguageModeling",
    "MotifPrediction",
    "Objective",
    "Objectives",
    "PlantedNoise",
    "PlantedTask",
    "SentenceOrderPrediction",
    "SimCSE",
    "build_objectives",
    "objective_names",
]

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        AttributeMasking,
        EdgePrediction,
        GraphCL,
        MotifPrediction,
        PlantedNoise,
        PlantedTask,
        MaskedLanguageModeling,
        SimCSE,
        SentenceOrderPrediction,
    )
}


def objective_names(domain: str | None = None) -> list[str]:
    return [n for n, cls in OBJECTIVES.items() if domain is None or cls.domain == domain]


def build_objectives(
    names: list[str], encoder: nn.Module, domain: str, tokenizer: Any = None
) -> Objectives:
    """Instantiate objectives by name for ``encoder``; unknown or wrong-domain names are refused."""
    if not names:
        raise ConfigError("at least one objective is needed")
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives must be distinct, got {names}")
    built = []
    for name in names:
        cls = OBJECTIVES.get(name)
        if cls is None or cls.domain != domain:
            raise ConfigError(
                f"unknown {domain} objective {name!r}; "
                f"choose from {', '.join(objective_names(domain))}"
            )
        built.append(cls(encoder, tokenizer=tokenizer) if domain == "text" else cls(encoder))
    return Objectives(built)
