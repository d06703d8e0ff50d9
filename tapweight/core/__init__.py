"""TapWeight: three-level objective reweighting on betty, with checkpoints and exact
hypergradients."""

from __future__ import annotations

from tapweight.core.config import HYPERGRADIENTS, TapWeightConfig
from tapweight.core.runner import CHECKPOINT_NAME, TapWeight

__all__ = ["CHECKPOINT_NAME", "HYPERGRADIENTS", "TapWeight", "TapWeightConfig"]
