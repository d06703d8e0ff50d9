"""What a trial keeps besides its row: the encoder the protocol continued-pretrained with the
strategy's weights, and those weights, described by one typed record.

The run directory writes and reads them (:meth:`harness.rundir.RunDirectory.write_artifact`);
the encoder's files are :mod:`tapweight.artifacts`' format, which ``tapweight finetune
--encoder`` loads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tapweight.downstream.metrics import HIGHER_IS_BETTER

__all__ = ["ArtifactInfo", "recommended_artifacts"]


class ArtifactInfo(BaseModel):
    """One trial's encoder and learned weights (``artifact.json`` in its folder)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="the artifact's name in its run (the trial, made path-safe)")
    trial: str
    dataset: str
    strategy: str
    seed: int
    domain: str = Field(description="molecule: a state dict + encoder.json; text: a folder")
    objective_names: list[str]
    weights: list[float] = Field(description="the strategy's learned objective weights")
    continued_pretraining: bool
    metric: str
    valid_mean: float = Field(description="the protocol's validation score of this encoder")
    test_mean: float


def recommended_artifacts(artifacts: list[ArtifactInfo]) -> dict[str, str]:
    """Per dataset, the artifact with the best validation score (ties: the first)."""
    best: dict[str, ArtifactInfo] = {}
    for item in artifacts:
        held = best.get(item.dataset)
        higher = HIGHER_IS_BETTER.get(item.metric, True)
        if held is None or (
            item.valid_mean > held.valid_mean if higher else item.valid_mean < held.valid_mean
        ):
            best[item.dataset] = item
    return {dataset: item.id for dataset, item in best.items()}
