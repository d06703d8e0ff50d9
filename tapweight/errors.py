"""One exception family for everything a user can get wrong.

The CLI prints any :class:`TapWeightError` as a one-line message (no traceback), so every
message names the offending value and says what to do instead.
"""

from __future__ import annotations

__all__ = ["TapWeightError", "DataError", "ConfigError", "ModelError", "TrainingError"]


class TapWeightError(Exception):
    """Base of all errors caused by input the user can fix."""


class DataError(TapWeightError, ValueError):
    """A dataset, file, column or split is missing, malformed or empty."""


class ConfigError(TapWeightError, ValueError):
    """A setting is unknown or out of range."""


class ModelError(TapWeightError, ValueError):
    """A weight file or encoder does not match the requested architecture."""


class TrainingError(TapWeightError, RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""
