"""A downstream task: train/valid/test data of either domain behind one loader interface."""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tapweight.data.splits import SplitKind
from tapweight.errors import DataError

__all__ = ["DownstreamTask", "make_loader"]


def make_loader(
    dataset: Any, batch_size: int, shuffle: bool, seed: int, collate: Callable | None = None
) -> DataLoader:
    """A seeded loader: PyG batching for graphs (``collate=None``), ``collate`` for text.

    Shuffled (training) loaders drop the last incomplete batch: it could hold a single
    one-atom molecule, on which batch norm cannot train; as every epoch reshuffles, no example
    is left out for good.
    """
    generator = torch.Generator().manual_seed(seed)
    drop_last = shuffle and len(dataset) > batch_size
    if collate is None:
        from torch_geometric.loader import DataLoader as GraphLoader

        return GraphLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            drop_last=drop_last,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate,
        drop_last=drop_last,
    )


@dataclass
class DownstreamTask:
    """Splits plus what scoring needs. ``test`` is only read by the final evaluation."""

    name: str
    task_type: str
    metric: str
    num_outputs: int
    train: Dataset
    valid: Dataset
    test: Dataset
    collate: Callable | None = None

    def loader(
        self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> DataLoader:
        return make_loader(getattr(self, split), batch_size, shuffle, seed, self.collate)

    def size(self, split: str) -> int:
        """Examples in ``split``; torch's Dataset type declares no ``__len__``, ours all have
        one."""
        data = getattr(self, split)
        if not isinstance(data, Sized):
            raise DataError(f"the {split} split of {self.name} has no length")
        return len(data)

    def train_target_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of observed train targets per task (for regression standardization)."""
        if self.collate is None:
            ys = torch.cat([self.train[i].y for i in range(self.size("train"))])
        else:
            ys = torch.tensor([float(self.train[i]["labels"]) for i in range(self.size("train"))])[
                :, None
            ]
        mean = torch.nanmean(ys, dim=0)
        std = torch.sqrt(torch.nanmean((ys - mean) ** 2, dim=0)).clamp_min(1e-6)
        return mean, std

    @classmethod
    def from_molecules(
        cls, dataset, split: SplitKind = "scaffold", seed: int = 0
    ) -> DownstreamTask:
        """Split a labeled :class:`~tapweight.data.molecules.MoleculeDataset`."""
        from tapweight.data.registry import DATASETS

        if not dataset.task_names:
            raise DataError(f"dataset {dataset.key!r} has no labels: it can only be a corpus")
        parts = dataset.get_split(split, seed)
        info = DATASETS.get(dataset.key)
        metric = info.metric if info else ("roc_auc" if dataset.task_type == "binary" else "rmse")
        return cls(
            name=dataset.key,
            task_type=dataset.task_type,
            metric=metric,
            num_outputs=len(dataset.task_names),
            train=dataset[parts.train],
            valid=dataset[parts.valid],
            test=dataset[parts.test],
        )

    @classmethod
    def from_text(cls, task, tokenizer, max_length: int = 128) -> DownstreamTask:
        """Tokenize a :class:`~tapweight.data.text_tasks.TextTask`."""
        from tapweight.data.tokenized import text_collate, tokenize_examples

        return cls(
            name=task.key,
            task_type=task.task_type,
            metric=task.metric,
            num_outputs=len(task.label_names) if task.task_type == "multiclass" else 1,
            train=tokenize_examples(task.train, tokenizer, max_length),
            valid=tokenize_examples(task.valid, tokenizer, max_length),
            test=tokenize_examples(task.test, tokenizer, max_length),
            collate=text_collate(tokenizer),
        )
