"""An encoder in the form its ecosystem loads: what every trial keeps, the service hands out and
``tapweight finetune --encoder`` reads back.

A folder holding ``encoder.json`` (the format and the architecture) and either

- molecules: ``encoder.pt``, the :class:`~tapweight.models.gnn.HuGNN`'s state dict (torch's own
  format, ``weights_only`` loadable), or
- text: ``encoder/``, a transformers ``save_pretrained`` folder with its tokenizer, which
  ``AutoModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load as they are.

Example:
    >>> save_encoder(HuGNN("gin", num_layers=2, emb_dim=16), Path("out"))  # doctest: +SKIP
    >>> load_encoder("out/encoder.pt")  # doctest: +SKIP
    HuGNN(gin, num_layers=2, emb_dim=16, jk=last, dropout=0.0)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from tapweight.errors import ModelError

__all__ = [
    "ENCODER_CONFIG",
    "STATE_DICT",
    "TEXT_FOLDER",
    "save_encoder",
    "load_encoder",
    "artifact_domain",
    "text_folder",
]

ENCODER_CONFIG = "encoder.json"
STATE_DICT = "encoder.pt"
TEXT_FOLDER = "encoder"
_GNN = "tapweight-hugnn/1"
_TEXT = "transformers"


def save_encoder(encoder: nn.Module, folder: str | os.PathLike[str], tokenizer: Any = None) -> Path:
    """Write ``encoder`` (and a text encoder's tokenizer) into ``folder``; returns the folder."""
    import torch

    from tapweight.models.gnn import HuGNN
    from tapweight.models.text import TextEncoder

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    if isinstance(encoder, HuGNN):
        partial = target / (STATE_DICT + ".partial")
        torch.save({k: v.detach().cpu() for k, v in encoder.state_dict().items()}, partial)
        os.replace(partial, target / STATE_DICT)
        config: dict[str, Any] = {
            "format": _GNN,
            "gnn_type": encoder.gnn_type,
            "num_layers": encoder.num_layers,
            "emb_dim": encoder.emb_dim,
            "jk": encoder.jk,
            "dropout": encoder.dropout,
        }
    elif isinstance(encoder, TextEncoder):
        model: Any = encoder.model  # a transformers PreTrainedModel
        model.save_pretrained(target / TEXT_FOLDER)
        if tokenizer is not None:
            tokenizer.save_pretrained(target / TEXT_FOLDER)
        config = {"format": _TEXT, "folder": TEXT_FOLDER, "model_type": encoder.config.model_type}
    else:
        raise ModelError(f"cannot save a {type(encoder).__name__}: not a HuGNN or TextEncoder")
    (target / ENCODER_CONFIG).write_text(json.dumps(config, indent=2))
    return target


def _config(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """``(folder, encoder.json)`` when ``path`` is an artifact folder, its ``encoder.pt`` or its
    ``encoder.json``; None for anything else."""
    given = Path(path)
    if given.is_dir():
        folder = given
    elif given.is_file() and given.name in (STATE_DICT, ENCODER_CONFIG):
        folder = given.parent
    else:
        return None
    file = folder / ENCODER_CONFIG
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{file}: not a readable encoder configuration ({error})") from None
    if not isinstance(config, dict) or config.get("format") not in (_GNN, _TEXT):
        raise ModelError(f"{file}: unknown encoder format; expected {_GNN!r} or {_TEXT!r}")
    return folder, config


def artifact_domain(path: str | os.PathLike[str]) -> str | None:
    """``molecule`` or ``text`` for a saved encoder, else None."""
    found = _config(path)
    if found is None:
        return None
    return "molecule" if found[1]["format"] == _GNN else "text"


def text_folder(path: str | os.PathLike[str]) -> Path | None:
    """The transformers folder of a saved text encoder, else None."""
    found = _config(path)
    if found is None or found[1]["format"] != _TEXT:
        return None
    return found[0] / str(found[1].get("folder", TEXT_FOLDER))


def load_encoder(path: str | os.PathLike[str]) -> nn.Module:
    """The encoder :func:`save_encoder` wrote (its folder, ``encoder.pt`` or ``encoder.json``)."""
    import torch

    from tapweight.models.gnn import HuGNN
    from tapweight.models.text import load_text_encoder

    found = _config(path)
    if found is None:
        raise ModelError(
            f"{os.fspath(path)!r} is no saved encoder: expected a folder (or its encoder.pt) "
            f"with {ENCODER_CONFIG} beside it"
        )
    folder, config = found
    if config["format"] == _TEXT:
        return load_text_encoder(folder / str(config.get("folder", TEXT_FOLDER)))
    try:
        model = HuGNN(
            config["gnn_type"],
            num_layers=int(config["num_layers"]),
            emb_dim=int(config["emb_dim"]),
            jk=config.get("jk", "last"),
            dropout=float(config.get("dropout", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{folder / ENCODER_CONFIG}: incomplete configuration ({error})") from None
    try:
        state = torch.load(folder / STATE_DICT, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except FileNotFoundError:
        raise ModelError(f"{folder}: no {STATE_DICT} beside {ENCODER_CONFIG}") from None
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise ModelError(f"{folder / STATE_DICT} does not fit {ENCODER_CONFIG}: {first}") from None
    return model
