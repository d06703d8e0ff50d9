"""One exception family for everything a user can get wrong.

The CLI prints any :class:`TapWeightError` as a one-line message (no traceback), so every
message names the offending value and says what to do instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "TapWeightError",
    "DataError",
    "ConfigError",
    "ModelError",
    "TrainingError",
    "describe_validation_error",
]


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


def describe_validation_error(
    error: ValidationError, *, separator: str = "; ", unnamed: str | None = "config"
) -> str:
    """Pydantic's errors as ``field.path: message`` items joined by ``separator``.

    Pydantic's own text spans several lines per problem and repeats ``Value error,`` before the
    messages our validators wrote to be read as they are; one item per problem, led by the field
    path, is what a user needs to find the setting. A problem of the whole model (no field path)
    is named ``unnamed``, or shows its message alone when ``unnamed`` is None.

    Example:
        >>> try:
        ...     TapWeightConfig(iterations=0, lr_gamma=2)
        ... except ValidationError as error:
        ...     print(describe_validation_error(error, separator="\n"))
        iterations: Input should be greater than or equal to 1
        lr_gamma: Input should be less than or equal to 1
    """
    items = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        where = ".".join(map(str, problem["loc"])) or unnamed
        items.append(f"{where}: {message}" if where else message)
    return separator.join(items)
