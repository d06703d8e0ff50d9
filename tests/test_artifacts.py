"""Saved encoders load back as they were: a HuGNN from its state dict + encoder.json, a text
encoder from its save_pretrained folder; the recommended artifact follows the metric."""

from __future__ import annotations

import torch

from harness.artifact import ArtifactInfo, recommended_artifacts
from tapweight.artifacts import artifact_domain, load_encoder, save_encoder, text_folder
from tapweight.models.gnn import HuGNN
from tapweight.models.registry import build_encoder, encoder_domain


def test_a_gnn_round_trips_and_the_registry_reads_it(tmp_path):
    model = HuGNN("gcn", num_layers=2, emb_dim=16)
    save_encoder(model, tmp_path / "a")
    for path in (tmp_path / "a", tmp_path / "a" / "encoder.pt", tmp_path / "a" / "encoder.json"):
        assert artifact_domain(path) == "molecule" and encoder_domain(str(path)) == "molecule"
    loaded = build_encoder(str(tmp_path / "a" / "encoder.pt"))
    assert str(loaded) == str(model)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert artifact_domain(tmp_path / "nothing.pt") is None


def test_a_text_encoder_round_trips_as_a_transformers_folder(tmp_path):
    from transformers import AutoModel

    from tapweight.models.text import load_tokenizer, tiny_text_encoder

    model = tiny_text_encoder()
    save_encoder(model, tmp_path / "t", load_tokenizer("minilm"))
    folder = text_folder(tmp_path / "t")
    assert folder is not None and (folder / "config.json").is_file()
    assert AutoModel.from_pretrained(folder).config.hidden_size == 32  # the ecosystem's loader
    assert str(load_encoder(tmp_path / "t")) == str(model)


def _info(name: str, metric: str, valid: float) -> ArtifactInfo:
    return ArtifactInfo(
        id=name, trial=name, dataset="d", strategy=name, seed=0, domain="molecule",
        objective_names=["a"], weights=[1.0], continued_pretraining=True, metric=metric,
        valid_mean=valid, test_mean=valid,
    )  # fmt: skip


def test_the_recommended_artifact_is_the_best_validation_score():
    assert recommended_artifacts([_info("x", "rmse", 2.0), _info("y", "rmse", 1.0)]) == {"d": "y"}
    assert recommended_artifacts([_info("x", "roc_auc", 0.9), _info("y", "roc_auc", 0.7)]) == {
        "d": "x"
    }
