"""The one protocol every continued-pretraining objective follows.

An objective is an ``nn.Module`` that owns its head parameters and turns (encoder, unlabeled
batch) into a scalar loss. It does its own corruption (masking, augmentation, pairing) from the
global torch RNG, so a seeded run is reproducible. Weighting strategies only ever see this
interface, which keeps them domain-agnostic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, cast, overload

from torch import Tensor, nn

__all__ = ["Objective", "Objectives"]


class Objective(nn.Module, ABC):
    """A pretraining loss with its own head.

    Subclasses set ``name`` and ``domain`` and implement :meth:`loss`. Constructors take the
    encoder only to read its sizes; the encoder is passed again at every call and never stored,
    so its parameters are not registered twice.
    """

    name: ClassVar[str]
    domain: ClassVar[str]

    @abstractmethod
    def loss(self, encoder: nn.Module, batch: Any) -> Tensor:
        """Scalar loss of ``encoder`` (plus this objective's head) on an unlabeled ``batch``."""

    def forward(self, encoder: nn.Module, batch: Any) -> Tensor:
        return self.loss(encoder, batch)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class Objectives(nn.ModuleList):
    """The objectives of a run, registered as submodules; iterating or indexing yields
    :class:`Objective`s, where a plain ``ModuleList`` tells the type checker only "modules"."""

    def __iter__(self) -> Iterator[Objective]:
        return (cast(Objective, module) for module in super().__iter__())

    @overload
    def __getitem__(self, index: slice) -> Objectives: ...

    @overload
    def __getitem__(self, index: int) -> Objective: ...

    def __getitem__(self, index: int | slice) -> Objective | Objectives:
        item = super().__getitem__(index)
        return cast(Objectives, item) if isinstance(index, slice) else cast(Objective, item)
