"""The result every weighting strategy returns, TapWeight and baselines alike.

Weights live on the simplex, the trajectory records them over training, and the cost counts
what the strategy spent, so the harness can compare strategies at equal budgets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["TrajectoryPoint", "Cost", "WeightingResult"]


class TrajectoryPoint(BaseModel):
    """The state of a strategy at one recorded step."""

    step: int = Field(ge=0)
    weights: list[float]
    objective_losses: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    """e.g. ``finetune_loss``, ``valid_roc_auc``, ``reweight_loss``."""


class Cost(BaseModel):
    wall_clock_s: float = Field(ge=0)
    device: str
    passes: dict[str, int] = Field(default_factory=dict)
    """Forward+backward passes per level (``pretrain``, ``finetune``, ``reweight``, ...)."""
    full_trainings: int = Field(0, ge=0)
    """Complete continued-pretraining runs the strategy paid for (grid points, trials)."""
    pretrain_steps: int = Field(0, ge=0)
    """Continued-pretraining optimizer steps the search took, as counted where they happen."""
    unspent_pretrain_steps: int = Field(0, ge=0)
    """The part of the budget the search did not take, and below, why."""
    unspent_reason: str | None = None

    @property
    def total_passes(self) -> int:
        return sum(self.passes.values())


class WeightingResult(BaseModel):
    """Objective weights found by a strategy, how it got there and what it cost.

    ``encoder`` (the continued-pretrained encoder, when the strategy trains one) is kept in
    memory and written by :meth:`save`; it is not part of the JSON.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    strategy: str
    objective_names: list[str]
    weights: list[float]
    trajectory: list[TrajectoryPoint] = Field(default_factory=list)
    cost: Cost
    native_scores: dict[str, float] = Field(default_factory=dict)
    """The strategy's own end model, where it has one, on validation (``valid_<metric>``): the
    test split belongs to the protocol's end."""
    task_weight: float | None = None
    """The end task's weight in a joint loss, for strategies that train on the end task with the
    objectives (META-TARTAN); not an objective weight, so apart from ``weights``."""
    continued_pretraining: bool = True
    """False for ``no_cp``: the fair protocol then finetunes the starting encoder directly."""
    settings: dict[str, Any] = Field(default_factory=dict)
    encoder: Any = Field(default=None, exclude=True)

    @field_validator("weights")
    @classmethod
    def _on_simplex(cls, weights: list[float]) -> list[float]:
        if any(w < -1e-9 or math.isnan(w) for w in weights) or abs(sum(weights) - 1) > 1e-4:
            raise ValueError(f"weights must be non-negative and sum to 1, got {weights}")
        return weights

    @model_validator(mode="after")
    def _one_weight_per_objective(self) -> WeightingResult:
        if len(self.weights) != len(self.objective_names):
            raise ValueError(
                f"{len(self.weights)} weights for {len(self.objective_names)} objectives"
            )
        for point in self.trajectory:
            if len(point.weights) != len(self.objective_names):
                raise ValueError(f"trajectory step {point.step} has {len(point.weights)} weights")
        return self

    @property
    def used_weights(self) -> list[float] | None:
        """The weights continued pretraining uses; None for a strategy without it (``no_cp``),
        whose weights are a placeholder no one should read as a choice."""
        return self.weights if self.continued_pretraining else None

    def with_budget(self, steps: int, total: int, unspent_reason: str | None) -> WeightingResult:
        """This result with its counted pretraining steps and the unspent part of ``total``."""
        unspent = total - steps
        cost = self.cost.model_copy(
            update={
                "pretrain_steps": steps,
                "unspent_pretrain_steps": unspent,
                "unspent_reason": (unspent_reason or "not stated") if unspent else None,
            }
        )
        return self.model_copy(update={"cost": cost})

    def save(self, directory: str | Path) -> Path:
        """Write ``result.json`` (and ``encoder.pt`` when there is an encoder)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "result.json").write_text(self.model_dump_json(indent=2))
        if self.encoder is not None:
            torch.save(self.encoder.state_dict(), directory / "encoder.pt")
        return directory / "result.json"

    @classmethod
    def load(cls, directory: str | Path) -> WeightingResult:
        return cls.model_validate(json.loads((Path(directory) / "result.json").read_text()))
