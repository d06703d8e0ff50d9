"""Weighting strategies: one :class:`Strategy` protocol, one module per strategy."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from baselines.base import Budget, Strategy
from baselines.grid import GridSearch, simplex_lattice
from baselines.luo import Luo
from baselines.meta_tartan import MetaTartan
from baselines.mometas import Mometas
from baselines.optuna_tpe import OptunaTPE
from baselines.search import TrialSearch
from baselines.static import NoContinuedPretraining, SingleObjective, Uniform
from baselines.tapweight_strategy import TapWeightStrategy
from tapweight.errors import ConfigError

__all__ = [
    "REFERENCE_STRATEGY",
    "STRATEGIES",
    "Budget",
    "GridSearch",
    "Luo",
    "MetaTartan",
    "Mometas",
    "NoContinuedPretraining",
    "OptunaTPE",
    "SingleObjective",
    "Strategy",
    "TapWeightStrategy",
    "Uniform",
    "TrialSearch",
    "make_strategy",
    "simplex_lattice",
    "strategy_class",
]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        TapWeightStrategy,
        NoContinuedPretraining,
        Uniform,
        SingleObjective,
        GridSearch,
        OptunaTPE,
        Mometas,
        MetaTartan,
        Luo,
    )
}


REFERENCE_STRATEGY = TapWeightStrategy.name
"""The strategy a comparison measures the others against unless a spec names another."""


def strategy_class(spec: str) -> type[Strategy]:
    """The class a strategy name (``single:<objective>`` too) refers to."""
    cls = STRATEGIES.get(spec.partition(":")[0])
    if cls is None:
        raise ConfigError(
            f"unknown strategy {spec!r}; choose from {', '.join(sorted(STRATEGIES))} "
            "(single:<objective> for one objective)"
        )
    return cls


def make_strategy(spec: str, **settings) -> Strategy:
    """Build a strategy from its name (``single:<objective>`` for one objective) and settings."""
    name, _, argument = spec.partition(":")
    cls = strategy_class(spec)
    if cls is SingleObjective:
        if not argument:
            raise ConfigError("strategy 'single' needs an objective: single:<objective>")
        settings["objective"] = argument
    elif argument:
        raise ConfigError(f"strategy {name!r} takes no ':' argument, got {spec!r}")
    try:
        return cls(**_typed_settings(cls, settings))
    except TypeError as error:
        raise ConfigError(f"strategy {name!r}: {error}") from None


_FINITE = ConfigDict(allow_inf_nan=False)


@functools.cache
def _setting_types(cls: type[Strategy]) -> dict[str, TypeAdapter[Any]]:
    """The constructor's annotated parameters, each with its validator (built once per class:
    every submitted spec checks its strategies' settings)."""
    hints = typing.get_type_hints(cls.__init__)
    parameters = inspect.signature(cls.__init__).parameters
    return {name: TypeAdapter(hints[name], config=_FINITE) for name in parameters if name in hints}


def _typed_settings(cls: type[Strategy], settings: dict[str, Any]) -> dict[str, Any]:
    """Check each setting against the constructor's annotation (strictly: ``2.5`` is not an
    int, nor ``"x"``), so that a wrong type is refused with the spec, not mid-run."""
    types = _setting_types(cls)
    typed = {}
    for key, value in settings.items():
        if key not in types:
            typed[key] = value  # unknown names: the constructor's TypeError names them
            continue
        try:
            typed[key] = types[key].validate_python(value, strict=True)
        except ValidationError as error:
            reason = error.errors()[0]["msg"]
            raise ConfigError(f"setting {key!r} = {value!r}: {reason}") from None
    return typed
