"""One protocol for every weighting strategy (Optuna's ``BaseSampler`` in spirit).

A strategy turns :class:`~tapweight.components.Components` and a :class:`Budget` into a
:class:`~tapweight.result.WeightingResult`: weights on the simplex, their trajectory, the
encoder it trained (if any) and what it cost. The harness then retrains every strategy's weights
with one shared protocol, so strategies only have to be honest about their own search. They
are held to it: :meth:`Strategy.run` counts the continued-pretraining steps the search takes
(:mod:`tapweight.budget`) and records them with the part of the budget left unspent and why.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from tapweight.budget import counting_pretrain_steps
from tapweight.components import Components
from tapweight.downstream.finetuning import FinetuneConfig
from tapweight.errors import ConfigError, TrainingError
from tapweight.pretrain import PretrainConfig
from tapweight.result import TrajectoryPoint, WeightingResult

__all__ = ["Budget", "BudgetUse", "Strategy", "ProgressCallback"]

ProgressCallback = Callable[[TrajectoryPoint], None]


class Budget(BaseModel):
    """What a strategy may spend, in continued-pretraining steps (the harness's common unit).

    ``total_pretrain_steps`` is the number of continued-pretraining optimizer steps every
    strategy's search may take, and takes in full unless it states why not (TapWeight runs that
    many iterations; MOMETAS, META-TARTAN and Luo that many steps; grid and Optuna as many runs
    of ``pretrain.steps`` as fit). ``pretrain.steps`` is the length of ONE continued-pretraining
    run: a grid point, an Optuna trial, and the protocol's final retraining.
    """

    model_config = ConfigDict(extra="forbid")

    total_pretrain_steps: int = Field(1000, ge=1)
    pretrain: PretrainConfig = Field(default_factory=lambda: PretrainConfig(progress=False))
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(progress=False))


class BudgetUse(NamedTuple):
    """The continued-pretraining steps a strategy's search takes, and why it leaves the rest."""

    steps: int
    unspent_reason: str | None = None


class Strategy(ABC):
    """Base of every weighting strategy.

    Subclasses set ``name`` and implement :meth:`search`; settings go to keyword-only
    constructor arguments, validated there with :class:`~tapweight.errors.ConfigError`. A
    strategy that cannot spend the whole budget overrides :meth:`budget_use` to say so.
    """

    name: ClassVar[str]
    requires_validation: ClassVar[bool] = False
    """True when the strategy reads the downstream validation split while searching."""
    resumable: ClassVar[bool] = False
    """True when the strategy takes a ``checkpoint_dir`` and continues from it after a crash."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"

    def objectives_problem(self, objectives: list[str]) -> str | None:
        """Why this strategy cannot weight ``objectives`` (checked with the spec), or None."""
        return None

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        """Fewest total pretraining steps this strategy can run with (for budget errors)."""
        return budget.pretrain.steps

    def budget_use(self, num_objectives: int, budget: Budget) -> BudgetUse:
        """What the search will spend: the whole budget, unless the strategy says why not."""
        return BudgetUse(budget.total_pretrain_steps)

    def check(self, parts: Components, budget: Budget) -> None:
        """Refuse impossible set-ups before any training starts."""
        if self.requires_validation and parts.task.size("valid") == 0:
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

    def run(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        """Search (or set) the objective weights for ``parts.task``, counting the
        continued-pretraining steps the search takes into ``result.cost``."""
        self.check(parts, budget)
        with counting_pretrain_steps() as count:
            result = self.search(parts, budget, callback)
        if count.steps > budget.total_pretrain_steps:
            raise TrainingError(
                f"strategy {self.name!r} took {count.steps} pretraining steps, over its budget "
                f"of {budget.total_pretrain_steps}"
            )
        return result.with_budget(
            count.steps,
            budget.total_pretrain_steps,
            self.budget_use(len(parts.objectives), budget).unspent_reason,
        )

    @abstractmethod
    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        """The strategy's own search; :meth:`run` checks the set-up first and counts its
        continued-pretraining steps."""
