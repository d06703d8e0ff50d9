"""Weighting strategies: one :class:`Strategy` protocol, one module per strategy."""

from __future__ import annotations

from baselines.base import Budget, Strategy
from baselines.grid import GridSearch, simplex_lattice
from baselines.luo import Luo
from baselines.meta_tartan import MetaTartan
from baselines.mometas import Mometas
from baselines.optuna_tpe import OptunaTPE
from baselines.static import NoContinuedPretraining, SingleObjective, Uniform
from baselines.tapweight_strategy import TapWeightStrategy
from tapweight.errors import ConfigError

__all__ = [
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
    "make_strategy",
    "simplex_lattice",
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


def make_strategy(spec: str, **settings) -> Strategy:
    """Build a strategy from its name (``single:<objective>`` for one objective) and settings."""
    name, _, argument = spec.partition(":")
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown strategy {spec!r}; choose from {', '.join(sorted(STRATEGIES))} "
            "(single:<objective> for one objective)"
        )
    if cls is SingleObjective:
        if not argument:
            raise ConfigError("strategy 'single' needs an objective: single:<objective>")
        settings["objective"] = argument
    elif argument:
        raise ConfigError(f"strategy {name!r} takes no ':' argument, got {spec!r}")
    try:
        return cls(**settings)
    except TypeError as error:
        raise ConfigError(f"strategy {name!r}: {error}") from None
