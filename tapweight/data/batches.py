"""Endless shuffled batches whose position can be saved and restored exactly.

Epoch ``e`` is a permutation drawn from ``seed + e`` alone, so the state is two integers
(epoch, offset): a resumed run sees the very batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ResumableBatches"]


class ResumableBatches:
    """Iterator of batches of ``batch_size`` (the last incomplete batch of an epoch is dropped
    when the dataset is larger than one batch; it may hold a lone one-atom molecule)."""

    def __init__(self, dataset: Any, batch_size: int, seed: int, collate: Callable | None = None):
        if len(dataset) == 0:
            raise ValueError("cannot draw batches from an empty dataset")
        self.dataset, self.seed = dataset, seed
        self.batch_size = min(batch_size, len(dataset))
        self.collate = collate or _graph_collate
        self.epoch, self.offset = 0, 0
        self._order: list[int] | None = None

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(size={len(self.dataset)}, batch_size={self.batch_size}, seed={self.seed})"

    def __iter__(self) -> ResumableBatches:
        return self

    def _permutation(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.dataset), generator=generator).tolist()

    def __next__(self) -> Any:
        if self._order is None:
            self._order = self._permutation()
        if self.offset + self.batch_size > len(self._order):
            self.epoch, self.offset = self.epoch + 1, 0
            self._order = self._permutation()
        indices = self._order[self.offset : self.offset + self.batch_size]
        self.offset += self.batch_size
        return self.collate([self.dataset[i] for i in indices])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.offset, self._order = int(state["epoch"]), int(state["offset"]), None


def _graph_collate(items: list) -> Any:
    from torch_geometric.data import Batch

    return Batch.from_data_list(items)
