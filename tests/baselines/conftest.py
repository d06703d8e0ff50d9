from __future__ import annotations

import dataclasses

import pytest

from baselines import Budget
from tapweight.downstream.finetuning import FinetuneConfig
from tapweight.pretrain import PretrainConfig

OBJECTIVES = ["attr_mask", "edge_pred", "motif"]


@pytest.fixture(scope="session")
def tiny_bbbp(data_dir):
    """Real BBBP (scaffold split) with a small GIN, so a strategy runs in seconds on a CPU."""
    import torch

    from tapweight.components import build_components
    from tapweight.models import HuGNN
    from tapweight.objectives import build_objectives

    parts = build_components("bbbp", "gin", OBJECTIVES, data_dir=data_dir)
    torch.manual_seed(0)
    encoder = HuGNN("gin", num_layers=2, emb_dim=32)
    return dataclasses.replace(
        parts, encoder=encoder, objectives=build_objectives(OBJECTIVES, encoder, "molecule")
    )


def tiny_budget(steps: int = 5, total: int | None = None) -> Budget:
    return Budget(
        total_pretrain_steps=total or steps,
        pretrain=PretrainConfig(steps=steps, batch_size=32, progress=False),
        finetune=FinetuneConfig(epochs=1, max_steps_per_epoch=5, progress=False),
    )
