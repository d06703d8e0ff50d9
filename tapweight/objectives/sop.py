"""Sentence-order prediction (ALBERT): were the two halves of a text swapped?

Each text's content tokens are cut in the middle into segments A and B; half of the pairs are
presented as ``[CLS] B [SEP] A [SEP]`` and the head on the ``[CLS]`` state says which order it saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tapweight.errors import ConfigError
from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objective

__all__ = ["SentenceOrderPrediction"]


class SentenceOrderPrediction(Objective):
    name = "sop"
    domain = "text"

    def __init__(self, encoder: nn.Module, tokenizer=None) -> None:
        super().__init__()
        if tokenizer is None:
            raise ConfigError("the sop objective needs the encoder's tokenizer")
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id
        self.head = nn.Linear(as_encoder(encoder).out_dim, 2)

    def _pairs(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor] | None:
        rows, types, labels = [], [], []
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
            content = ids[mask.bool()]
            content = content[(content != self.cls_id) & (content != self.sep_id)]
            if content.numel() < 2:
                continue
            half = content.numel() // 2
            first, second = content[:half], content[half:]
            swapped = bool(torch.rand(()) < 0.5)
            if swapped:
                first, second = second, first
            cls, sep = content.new_tensor([self.cls_id]), content.new_tensor([self.sep_id])
            rows.append(torch.cat([cls, first, sep, second, sep]))
            types.append(
                torch.cat(
                    [content.new_zeros(first.numel() + 2), content.new_ones(second.numel() + 1)]
                )
            )
            labels.append(int(swapped))
        if not rows:
            return None
        width = max(r.numel() for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=rows[0].dtype)
        token_types = torch.zeros_like(input_ids)
        attention = torch.zeros_like(input_ids)
        for i, (row, typ) in enumerate(zip(rows, types, strict=True)):
            (
                input_ids[i, : row.numel()],
                token_types[i, : row.numel()],
                attention[i, : row.numel()],
            ) = row, typ, 1
        device = batch["input_ids"].device
        inputs = {
            "input_ids": input_ids,
            "token_type_ids": token_types,
            "attention_mask": attention,
        }
        return {k: v.to(device) for k, v in inputs.items()}, torch.tensor(labels, device=device)

    def loss(self, encoder: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        pairs = self._pairs(batch)
        if pairs is None:  # every text too short to split: no signal, but keep the graph valid
            return self.head.weight.sum() * 0.0
        inputs, labels = pairs
        return F.cross_entropy(self.head(encoder(inputs)[:, 0]), labels)
