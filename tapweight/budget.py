"""The one count of continued-pretraining steps that every strategy's pretraining goes through.

Strategies are compared at equal budgets, so what they spent is counted where the spending
happens (each optimizer step on a pretraining loss calls :func:`pretrain_step_taken`), not
derived from each strategy's own arithmetic. :func:`counting_pretrain_steps` opens a count for
the code it wraps; outside any count the call does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["StepCount", "counting_pretrain_steps", "pretrain_step_taken"]


@dataclass
class StepCount:
    steps: int = 0


_COUNTS: ContextVar[tuple[StepCount, ...]] = ContextVar("pretrain_step_counts", default=())


@contextmanager
def counting_pretrain_steps() -> Iterator[StepCount]:
    """Count the continued-pretraining optimizer steps taken inside the block (nested counts
    each see every step)."""
    count = StepCount()
    token = _COUNTS.set((*_COUNTS.get(), count))
    try:
        yield count
    finally:
        _COUNTS.reset(token)


def pretrain_step_taken() -> None:
    """Record one optimizer step on a continued-pretraining loss."""
    for count in _COUNTS.get():
        count.steps += 1
