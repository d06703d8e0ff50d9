"""One results row: what a finished trial (dataset × strategy × seed) reports.

The row is what the harness writes to ``results.jsonl``, the report reads, the service returns
from ``/jobs/{id}/results`` and the dashboard draws; one pydantic model for all of them, next
to the strategy's own :class:`~tapweight.result.WeightingResult`. Its JSON Schema is kept in
``harness/row.schema.json`` (``tapweight spec row-schema`` prints it), and the dashboard's
code is tested against it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from tapweight.result import TrajectoryPoint

__all__ = ["ResultRow", "RowCost", "ProtocolScores", "ROW_SCHEMA_PATH", "row_json_schema"]

ROW_SCHEMA_PATH = Path(__file__).with_name("row.schema.json")


class ProtocolScores(BaseModel):
    """The shared protocol's scores of one strategy's weights: one per finetuning seed.

    The means are derived, written out for readers of the JSON and ignored when read back."""

    model_config = ConfigDict(extra="ignore")

    metric: str
    valid: list[float] = Field(min_length=1)
    test: list[float] = Field(min_length=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def valid_mean(self) -> float:
        return statistics.mean(self.valid)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def test_mean(self) -> float:
        return statistics.mean(self.test)


class RowCost(BaseModel):
    """What the trial cost: the strategy's search plus the protocol."""

    model_config = ConfigDict(extra="forbid")

    wall_clock_s: float = Field(ge=0)
    search_s: float = Field(ge=0)
    protocol_s: float = Field(ge=0)
    device_seconds: float = Field(ge=0, description="wall seconds × devices the trial held")
    device: str
    passes: dict[str, int] = Field(description="forward+backward passes per level and phase")
    search_passes: int = Field(ge=0)
    pretrain_steps: int = Field(ge=0, description="continued-pretraining steps of the search")
    unspent_pretrain_steps: int = Field(ge=0)
    unspent_reason: str | None = None
    full_trainings: int = Field(ge=0)


class ResultRow(BaseModel):
    """One finished trial: the strategy's weights, the protocol's scores, cost and provenance."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"title": "TapWeight result row"})

    trial: str = Field(description="dataset/strategy/seed<N>, unique in a run")
    spec_hash: str
    experiment: str
    dataset: str
    strategy: str = Field(description="the strategy's label in the spec (name and settings)")
    seed: int
    objective_names: list[str]
    weights: list[float] = Field(description="objective weights, in objective_names' order")
    task_weight: float | None = Field(
        None, description="the end task's weight in the strategy's own joint training, if any"
    )
    continued_pretraining: bool
    retrained: ProtocolScores
    native: dict[str, float] = Field(description="the strategy's own validation scores")
    cost: RowCost
    trajectory: list[TrajectoryPoint]
    settings: dict[str, Any]
    versions: dict[str, str]
    ran_on: dict[str, str]

    @property
    def metric(self) -> str:
        return self.retrained.metric


def row_json_schema() -> dict[str, Any]:
    """The row as readers see it (derived means included)."""
    return ResultRow.model_json_schema(mode="serialization")
