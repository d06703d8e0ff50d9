"""One protocol for every weighting strategy (Optuna's ``BaseSampler`` in spirit).

A strategy turns :class:`~tapweight.components.Components` and a :class:`Budget` into a
:class:`~tapweight.result.WeightingResult`: weights on the simplex, their trajectory, the
encoder it trained (if any) and what it cost. The harness then retrains every strategy's weights
with one shared protocol, so strategies only have to be honest about their own search.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tapweight.components import Components
from tapweight.downstream.finetuning import FinetuneConfig
from tapweight.errors import ConfigError
from tapweight.pretrain import PretrainConfig
from tapweight.result import TrajectoryPoint, WeightingResult

__all__ = ["Budget", "Strategy", "ProgressCallback"]

ProgressCallback = Callable[[TrajectoryPoint], None]


class Budget(BaseModel):
    """What a strategy may spend, in continued-pretraining steps (the harness's common unit).

    ``pretrain.steps`` is the length of ONE continued-pretraining run (a grid point, a trial,
    the final retraining); ``total_pretrain_steps`` caps all pretraining steps the search may
    spend together.
    """

    model_config = ConfigDict(extra="forbid")

    total_pretrain_steps: int = Field(1000, ge=1)
    pretrain: PretrainConfig = Field(default_factory=lambda: PretrainConfig(progress=False))
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(progress=False))


class Strategy(ABC):
    """Base of every weighting strategy.

    Subclasses set ``name`` and implement :meth:`run`; settings go to keyword-only constructor
    arguments, validated there with :class:`~tapweight.errors.ConfigError`.
    """

    name: ClassVar[str]
    requires_validation: ClassVar[bool] = False
    """True when the strategy reads the downstream validation split while searching."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        """Fewest total pretraining steps this strategy can run with (for budget errors)."""
        return budget.pretrain.steps

    def check(self, parts: Components, budget: Budget) -> None:
        """Refuse impossible set-ups before any training starts."""
        if self.requires_validation and len(parts.task.valid) == 0:
            raise ConfigError(
                f"strategy {self.name!r} needs a labeled validation split; it is empty"
            )
        needed = self.minimum_budget(len(parts.objectives), budget)
        if budget.total_pretrain_steps < needed:
            raise ConfigError(
                f"strategy {self.name!r} needs at least {needed} pretraining steps with "
                f"{len(parts.objectives)} objectives; the budget allows "
                f"{budget.total_pretrain_steps}"
            )

    @abstractmethod
    def run(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        """Search (or set) the objective weights for ``parts.task``."""
