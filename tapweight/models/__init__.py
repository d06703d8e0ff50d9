"""Encoders of both domains."""

from __future__ import annotations

from tapweight.models.gnn import HuGNN, load_pretrained_gnn
from tapweight.models.registry import ENCODER_HELP, build_encoder, encoder_domain
from tapweight.models.text import TextEncoder, load_text_encoder, load_tokenizer, tiny_text_encoder

__all__ = [
    "ENCODER_HELP",
    "build_encoder",
    "encoder_domain",
    "HuGNN",
    "TextEncoder",
    "load_pretrained_gnn",
    "load_text_encoder",
    "load_tokenizer",
    "tiny_text_encoder",
]
