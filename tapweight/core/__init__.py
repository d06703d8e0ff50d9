"""TapWeight: three-level objective reweighting on betty, with checkpoints and exact
hypergradients."""

from __future__ import annotations

from tapweight.core.checkpoint import CHECKPOINT_NAME
from tapweight.core.config import HYPERGRADIENTS, TapWeightConfig
from tapweight.core.runner import TapWeight

__all__ = ["CHECKPOINT_NAME", "HYPERGRADIENTS", "TapWeight", "TapWeightConfig"]
