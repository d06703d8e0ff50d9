"""What the heads on top of an encoder read of it: its width and a pooled embedding.

Encoders stay plain ``nn.Module``s (HuGNN, TextEncoder, a test's stand-in), but torch types an
attribute looked up on a module as tensor-or-module, so heads and objectives reach ``out_dim``
and ``embed`` through :func:`as_encoder`, which checks them once and tells the type checker.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from tapweight.errors import ModelError

__all__ = ["Encoder", "as_encoder"]


@runtime_checkable
class Encoder(Protocol):
    """An encoder as heads see it."""

    @property
    def out_dim(self) -> int:
        """Width of :meth:`embed`'s rows (and of the token or node states)."""

    def embed(self, batch: Any) -> Tensor:
        """One vector per example (pooled graph or sentence representation)."""


def as_encoder(module: nn.Module) -> Encoder:
    """``module`` seen as an :class:`Encoder`; one without ``out_dim`` or ``embed`` is refused."""
    if not isinstance(module, Encoder):
        raise ModelError(
            f"{type(module).__name__} cannot carry a head: an encoder needs an out_dim and an "
            "embed(batch) method"
        )
    return module
