"""Text examples as token ids: tokenized once, cached on disk, padded per batch.

Tokenized examples are cached under ``<cache_dir>/processed/text``, named by a hash of the
tokenizer, ``max_length`` and the examples' content, so a stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from tapweight.data.paths import cache_dir
from tapweight.data.text_tasks import TextExample
from tapweight.errors import DataError

__all__ = ["TokenizedText", "tokenize_examples", "tokenize_texts", "text_collate"]

log = logging.getLogger("tapweight.data")

_CACHE_VERSION = 1
"""Bump when the cached tensor layout changes, so old cache files are never read."""

_FIELDS = ("input_ids", "attention_mask", "token_type_ids")


class TokenizedText(Dataset):
    """Variable-length tokenized examples; pad per batch with :func:`text_collate`.

    Stored as one flat tensor per field plus offsets, which keeps the on-disk cache compact.
    """

    def __init__(
        self,
        flat: dict[str, torch.Tensor],
        offsets: torch.Tensor,
        labels: torch.Tensor | None = None,
        cache_path: Path | None = None,
        from_cache: bool = False,
    ) -> None:
        self.flat = flat
        self.offsets = offsets
        self.labels = labels
        self.cache_path = cache_path
        self.from_cache = from_cache

    def __len__(self) -> int:
        return int(self.offsets.numel()) - 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        index %= len(self)
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        item = {name: values[start:end].long() for name, values in self.flat.items()}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item

    def lengths(self) -> torch.Tensor:
        """Token count of every example (for length-bucketed batching and reports)."""
        return self.offsets[1:] - self.offsets[:-1]

    def _state(self) -> dict[str, Any]:
        return {"flat": self.flat, "offsets": self.offsets, "labels": self.labels}


def _cache_key(tokenizer: Any, max_length: int, kind: str, content: Any) -> str:
    digest = hashlib.sha256()
    meta = [
        str(getattr(tokenizer, "name_or_path", "")),
        type(tokenizer).__name__,
        len(tokenizer),
        max_length,
        _CACHE_VERSION,
        kind,
    ]
    digest.update(json.dumps(meta).encode())
    digest.update(json.dumps(content, ensure_ascii=False).encode())
    return digest.hexdigest()


def _cache_file(digest: str) -> Path:
    return cache_dir() / "processed" / "text" / f"{digest}.pt"


def _load_cached(path: Path) -> TokenizedText | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
        return TokenizedText(
            state["flat"], state["offsets"], state["labels"], cache_path=path, from_cache=True
        )
    except Exception as error:  # noqa: BLE001 - a corrupt cache is rebuilt, not fatal
        log.warning("tokenization cache %s unreadable (%s); tokenizing again", path, error)
        return None


def _save_atomic(dataset: TokenizedText, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp_name = tmp.name
    try:
        torch.save(dataset._state(), tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def _encode(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[str | None], max_length: int
) -> dict[str, list[list[int]]]:
    """Tokenize, batching single texts and pairs separately (a batch cannot mix them)."""
    n = len(texts)
    out: dict[str, list[list[int]]] = {}
    groups = [
        [i for i in range(n) if pairs[i] is None],
        [i for i in range(n) if pairs[i] is not None],
    ]
    for is_pair, indices in enumerate(groups):
        if not indices:
            continue
        args: list[Any] = [[texts[i] for i in indices]]
        if is_pair:
            args.append([pairs[i] for i in indices])
        encoded = tokenizer(*args, truncation=True, max_length=max_length, padding=False)
        for name in _FIELDS:
            if name not in encoded:
                continue
            column = out.setdefault(name, [[] for _ in range(n)])
            for i, ids in zip(indices, encoded[name], strict=True):
                column[i] = list(ids)
    if "input_ids" not in out:
        out["input_ids"] = []
    if "token_type_ids" in out and any(not ids for ids in out["token_type_ids"]):
        # One group came back without segment ids: every token is segment 0 there.
        out["token_type_ids"] = [
            ids or [0] * len(out["input_ids"][i]) for i, ids in enumerate(out["token_type_ids"])
        ]
    return out


def _build(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str | None],
    labels: torch.Tensor | None,
    max_length: int,
    kind: str,
    content: Any,
) -> TokenizedText:
    if max_length < 2:
        raise DataError(
            f"max_length must be at least 2 (room for [CLS] and [SEP]), got {max_length}"
        )
    path = _cache_file(_cache_key(tokenizer, max_length, kind, content))
    cached = _load_cached(path)
    if cached is not None:
        return cached
    encoded = _encode(tokenizer, texts, pairs, max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    offsets = torch.zeros(len(texts) + 1, dtype=torch.long)
    if lengths:
        offsets[1:] = torch.tensor(lengths, dtype=torch.long).cumsum(0)
    flat = {
        name: torch.tensor([t for ids in columns for t in ids], dtype=torch.int32)
        for name, columns in encoded.items()
    }
    dataset = TokenizedText(flat, offsets, labels, cache_path=path)
    try:
        _save_atomic(dataset, path)
    except OSError as error:
        log.warning(
            "could not write tokenization cache %s (%s); continuing without it", path, error
        )
        dataset.cache_path = None
    return dataset


def tokenize_examples(
    examples: Sequence[TextExample], tokenizer: Any, max_length: int = 128
) -> TokenizedText:
    """Tokenize labeled examples (cached on disk); labels are float if any label is a float.

    Truncates to ``max_length`` and does not pad: :func:`text_collate` pads each batch.
    """
    regression = any(isinstance(e.label, float) for e in examples)
    labels = torch.tensor(
        [float(e.label) if regression else int(e.label) for e in examples],
        dtype=torch.float32 if regression else torch.long,
    )
    content = [[e.text, e.text_pair, e.label] for e in examples]
    return _build(
        tokenizer,
        [e.text for e in examples],
        [e.text_pair for e in examples],
        labels,
        max_length,
        "regression" if regression else "classification",
        content,
    )


def tokenize_texts(texts: Sequence[str], tokenizer: Any, max_length: int = 128) -> TokenizedText:
    """Tokenize unlabeled texts for continued pretraining (cached on disk); items have no labels."""
    texts = list(texts)
    return _build(tokenizer, texts, [None] * len(texts), None, max_length, "texts", texts)


def text_collate(
    tokenizer: Any,
) -> Callable[[list[dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
    """A DataLoader ``collate_fn`` that pads items to the longest in the batch.

    Labels are stacked separately so their dtype (long or float) is kept as tokenized.
    """
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if not items:
            raise DataError("cannot collate an empty batch")
        inputs = [{k: v for k, v in item.items() if k != "labels"} for item in items]
        batch = dict(pad(inputs))
        if "labels" in items[0]:
            batch["labels"] = torch.stack([torch.as_tensor(item["labels"]) for item in items])
        return batch

    return collate
