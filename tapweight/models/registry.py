"""Encoders by name, so configs and the CLI can say ``gcn_supervised_contextpred`` or ``minilm``."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from tapweight.data.registry import PRETRAINED_WEIGHTS
from tapweight.errors import ModelError

__all__ = ["ENCODER_HELP", "build_encoder", "encoder_domain", "is_encoder_name"]

_RANDOM_GNNS = ("gin", "gcn", "graphsage", "gat")
_TEXT_NAMES = ("minilm", "tiny-bert")
ENCODER_HELP = (
    "molecules: gin|gcn|graphsage|gat (random init), a Hu et al. weight name such as "
    "gcn_supervised_contextpred, or a .pth path; text: minilm (embedded), tiny-bert (random, "
    "for tests) or a local transformers folder; either: a saved encoder (an artifact folder, "
    "or its encoder.pt)"
)


def is_encoder_name(spec: str) -> bool:
    """Whether ``spec`` is a registered name; anything else is read as a path."""
    return (
        spec in _RANDOM_GNNS
        or spec in _TEXT_NAMES
        or spec.removesuffix(".pth") in PRETRAINED_WEIGHTS
    )


def encoder_domain(spec: str) -> str:
    """``molecule`` or ``text`` for an encoder spec."""
    from tapweight.artifacts import artifact_domain

    if not is_encoder_name(spec) and (saved := artifact_domain(spec)) is not None:
        return saved
    if spec in _RANDOM_GNNS or spec in PRETRAINED_WEIGHTS or spec.endswith(".pth"):
        return "molecule"
    if spec in _TEXT_NAMES or (Path(spec) / "config.json").is_file():
        return "text"
    raise ModelError(f"unknown encoder {spec!r}; {ENCODER_HELP}")


def build_encoder(
    spec: str, data_dir: str | os.PathLike[str] | None = None, **gnn_options
) -> nn.Module:
    """Instantiate the encoder named by ``spec`` (see :data:`ENCODER_HELP`)."""
    from tapweight.artifacts import artifact_domain, load_encoder
    from tapweight.models.gnn import HuGNN, load_pretrained_gnn
    from tapweight.models.text import load_text_encoder, tiny_text_encoder

    if not is_encoder_name(spec) and artifact_domain(spec) is not None:
        if gnn_options:
            raise ModelError(f"{spec!r} is a saved encoder: its size is its own, not set")
        return load_encoder(spec)
    domain = encoder_domain(spec)
    if domain == "molecule":
        if spec in _RANDOM_GNNS:
            return HuGNN(spec, **gnn_options)  # type: ignore[arg-type]
        return load_pretrained_gnn(spec, data_dir, **gnn_options)
    if spec == "tiny-bert":
        return tiny_text_encoder()
    return load_text_encoder(spec)
