"""TapWeight: task-adaptive weighting of continued-pretraining objectives."""

from __future__ import annotations

from tapweight.errors import ConfigError, DataError, ModelError, TapWeightError, TrainingError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "ModelError", "TapWeightError", "TrainingError"]
