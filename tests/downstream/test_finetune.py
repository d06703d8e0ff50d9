"""Finetuning on real BBBP with the Hu et al. GCN weights (scaffold split, CPU scale)."""

from __future__ import annotations

import pytest
import torch

from tapweight.downstream import DownstreamTask, FinetuneConfig, finetune, proximal_term
from tapweight.downstream import finetuning as finetune_module

pytestmark = pytest.mark.dataset


@pytest.fixture(scope="module")
def bbbp_task(data_dir):
    from tapweight.data import MoleculeDataset

    return DownstreamTask.from_molecules(MoleculeDataset("bbbp", data_dir), "scaffold")


def _valid_auc(encoder, task, seed, epochs=2):
    return finetune(encoder, task, FinetuneConfig(epochs=epochs, seed=seed, progress=False))


@pytest.mark.slow
def test_pretrained_gcn_learns_bbbp_and_beats_random_init(bbbp_task, data_dir):
    from tapweight.models import HuGNN, load_pretrained_gnn

    pretrained, random = [], []
    for seed in (0, 1):
        pretrained.append(
            _valid_auc(load_pretrained_gnn("gcn_supervised_contextpred", data_dir), bbbp_task, seed)
        )
        torch.manual_seed(seed)
        random.append(_valid_auc(HuGNN("gcn"), bbbp_task, seed))
    pre = sum(r.valid_score for r in pretrained) / 2
    rand = sum(r.valid_score for r in random) / 2
    assert pre > 0.75, f"pretrained GCN validation ROC-AUC {pre:.3f}"
    assert pre > rand, f"pretrained {pre:.3f} should beat random init {rand:.3f} on the same budget"
    assert all(0.0 <= r.test_score <= 1.0 for r in pretrained)


def test_test_split_is_read_once_with_the_best_validation_weights(bbbp_task, data_dir, monkeypatch):
    from tapweight.models import load_pretrained_gnn

    calls = []
    original = finetune_module.evaluate

    def counting_evaluate(model, loader, metrics, device="cpu"):
        calls.append(loader.dataset)
        return original(model, loader, metrics, device)

    monkeypatch.setattr(finetune_module, "evaluate", counting_evaluate)
    config = FinetuneConfig(epochs=3, seed=0, progress=False, max_steps_per_epoch=5)
    result = finetune(load_pretrained_gnn("gcn_contextpred", data_dir), bbbp_task, config)
    test_reads = [d for d in calls if d is bbbp_task.test]
    assert len(test_reads) == 1 and calls[-1] is bbbp_task.test
    assert len(calls) == 4  # three validation passes, then test
    best = max(result.history, key=lambda r: r["valid_roc_auc"])
    assert result.best_epoch == best["epoch"] and result.valid_score == best["valid_roc_auc"]


def test_early_stopping_stops_patience_epochs_after_the_best(bbbp_task):
    from tapweight.models import HuGNN

    config = FinetuneConfig(epochs=40, patience=2, seed=0, progress=False, max_steps_per_epoch=2)
    result = finetune(HuGNN("gin", num_layers=2, emb_dim=16), bbbp_task, config)
    assert len(result.history) < 40, "validation kept improving for 40 epochs: nothing tested"
    assert len(result.history) == result.best_epoch + 2
    later = [r["valid_roc_auc"] for r in result.history[result.best_epoch :]]
    assert all(score <= result.valid_score for score in later)


def test_proximal_term_keeps_the_encoder_near_its_start(bbbp_task):
    from tapweight.models import HuGNN

    torch.manual_seed(0)
    start = HuGNN("gin", num_layers=2, emb_dim=32)
    drift = {}
    for lam in (0.0, 10.0):
        config = FinetuneConfig(
            epochs=1, lr=1e-2, prox_lam=lam, seed=0, progress=False, max_steps_per_epoch=20
        )
        result = finetune(start, bbbp_task, config)
        drift[lam] = proximal_term(result.model.encoder, start).item()
    assert drift[10.0] < 0.5 * drift[0.0]


def test_regression_targets_are_standardized_with_train_statistics(data_dir):
    from tapweight.data import MoleculeDataset
    from tapweight.models import HuGNN

    task = DownstreamTask.from_molecules(MoleculeDataset("esol", data_dir))
    mean, std = task.train_target_stats()
    train_y = torch.cat([task.train[i].y for i in range(len(task.train))])
    assert mean.item() == pytest.approx(train_y.mean().item(), abs=1e-5)
    assert std.item() == pytest.approx(train_y.std(unbiased=False).item(), rel=1e-4)
    result = finetune(
        HuGNN("gin", num_layers=2, emb_dim=32),
        task,
        FinetuneConfig(epochs=2, seed=0, progress=False),
    )
    assert result.metric == "rmse" and result.model.target_mean.item() == pytest.approx(mean.item())
    # predictions come back in log-solubility units, not standardized ones
    assert 0.3 < result.valid_score < 3 * std.item()


def test_the_text_proximal_term_is_l2_on_embeddings_and_l1_on_encoder_layers_per_parameter():
    """TapWeight's text reference (nlureweight/main_roberta.py:427-440), computed by hand."""
    import copy

    from tapweight.downstream.finetuning import proximal_term
    from tapweight.models.text import tiny_text_encoder

    reference = tiny_text_encoder()
    moved = copy.deepcopy(reference)
    with torch.no_grad():
        for param in moved.parameters():
            param.add_(0.5)
    sizes = {"embeddings": 0, "encoder": 0}
    for name, param in reference.named_parameters():
        for part in sizes:
            sizes[part] += param.numel() if f".{part}." in f".{name}" else 0
    expected = (0.25 * sizes["embeddings"] + 0.5 * sizes["encoder"]) / sum(sizes.values())
    got = proximal_term(moved, reference, normalize=True, kind="l2_embeddings_l1_encoder")
    assert got.item() == pytest.approx(expected, rel=1e-5)
    plain = proximal_term(moved, reference)  # the molecule reference: Σ‖Δ‖² over everything
    assert plain.item() == pytest.approx(0.25 * sum(p.numel() for p in reference.parameters()))
