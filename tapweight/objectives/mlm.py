"""Masked language modelling with transformers' own masking (80/10/10 of 15 % of tokens)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tapweight.errors import ConfigError
from tapweight.objectives.base import Objective

__all__ = ["MaskedLanguageModeling"]


class MaskedLanguageModeling(Objective):
    """Cross-entropy on masked tokens; the head starts fresh (MiniLM ships without one)."""

    name = "mlm"
    domain = "text"
    special_ids: Tensor

    def __init__(self, encoder: nn.Module, tokenizer=None, mlm_probability: float = 0.15) -> None:
        super().__init__()
        if tokenizer is None:
            raise ConfigError("the mlm objective needs the encoder's tokenizer")
        from transformers import DataCollatorForLanguageModeling
        from transformers.models.bert.modeling_bert import BertOnlyMLMHead

        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        self.head = BertOnlyMLMHead(encoder.config)
        self.register_buffer(
            "special_ids", torch.tensor(tokenizer.all_special_ids), persistent=False
        )

    def loss(self, encoder: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        ids = batch["input_ids"]
        special = torch.isin(ids, self.special_ids) | (batch["attention_mask"] == 0)
        # transformers draws the mask with CPU tensors, so masking happens there: the same masks
        # on every device for a given seed, at the cost of copying a batch of token ids.
        inputs, labels = self.collator.torch_mask_tokens(ids.cpu().clone(), special.cpu())
        inputs, labels = inputs.to(ids.device), labels.to(ids.device)
        states = encoder({**batch, "input_ids": inputs})
        logits = self.head(states)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
