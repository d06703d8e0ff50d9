"""Luo et al. 2021 (our implementation of the proposal): the meta-learned policy finds the
useful objective, runs on real data, refuses bad settings and is reproducible."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from baselines.base import Budget
from baselines.luo import Luo, policy_step
from tapweight.components import Components
from tapweight.errors import ConfigError
from tapweight.objectives.base import Objective, Objectives
from tapweight.pretrain import PretrainConfig
from tapweight.result import WeightingResult
from tests.core.synthetic import Rows, make_problem

from .conftest import tiny_budget


def aware_problem(**sizes) -> Components:
    encoder, objectives, corpus, task = make_problem(**sizes)
    return Components(encoder, objectives, corpus, default_collate, task, "synthetic")


def synthetic_budget(total: int, lr: float) -> Budget:
    config = PretrainConfig(lr=lr, batch_size=32, optimizer="sgd", progress=False)
    return Budget(total_pretrain_steps=total, pretrain=config)


# -- agnostic toy -----------------------------------------------------------------------------
# tests/core/synthetic.py does not fit the agnostic variant: its objectives compete for ONE
# feature, so the mean held-out loss is lowest at a compromise and no objective's loss keeps
# dropping. Here each objective owns a zero-initialized feature (a separate parameter that the
# other objective never touches, so optimizer momentum never carries one objective's progress
# into the other's episodes):
# "learnable" fits x·w with a small learning rate (its held-out loss drops episode after
# episode), "noise" fits fresh Gaussian noise (nothing to learn, its loss stays at ~1).
class TwoFeatureEncoder(nn.Module):
    out_dim = 2

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(dim, 1, bias=False), nn.Linear(dim, 1, bias=False)
        nn.init.zeros_(self.first.weight), nn.init.zeros_(self.second.weight)

    def forward(self, batch):
        return torch.cat([self.first(batch["x"]), self.second(batch["x"])], dim=1)

    def embed(self, batch):
        return self(batch)


class Learnable(Objective):
    name, domain = "learnable", "synthetic"

    def loss(self, encoder, batch):
        return F.mse_loss(encoder.first(batch["x"]).squeeze(-1), batch["signal"])


class Noise(Objective):
    name, domain = "noise", "synthetic"

    def loss(self, encoder, batch):  # corruption from the global RNG, like real objectives
        feature = encoder.second(batch["x"]).squeeze(-1)
        return F.mse_loss(feature, torch.randn_like(feature))


def agnostic_problem(dim: int = 8, size: int = 512) -> Components:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(dim, generator=g)
    x = torch.randn(size, dim, generator=g)
    encoder = TwoFeatureEncoder(dim)
    task = make_problem(dim=dim)[3]  # unused by the agnostic variant
    corpus = Rows(x=x, signal=x @ (w / w.norm()))
    return Components(
        encoder, Objectives([Learnable(), Noise()]), corpus, default_collate, task, "synthetic"
    )


# -- learning the useful objective --------------------------------------------------------------
def test_aware_policy_moves_to_the_objective_that_carries_the_downstream_signal():
    points = []
    strategy = Luo(variant="aware", episode_steps=5, policy_lr=1.0, probe_steps=30)
    result = strategy.run(aware_problem(), synthetic_budget(150, 0.05), callback=points.append)
    useful, unrelated, noise = result.weights
    assert useful > 1 / 3 + 0.3, result.weights
    assert unrelated < 1 / 3 and noise < 1 / 3
    assert points == result.trajectory and len(points) == 30
    assert [p.step for p in points] == list(range(5, 151, 5))
    first, last = points[0].metrics["probe_valid_loss"], points[-1].metrics["probe_valid_loss"]
    assert last < first  # the encoder it returns is better for the task than where it started
    assert result.strategy == "luo_aware" and result.cost.passes == {
        "pretrain": 150,
        "probe": 31 * 30,
    }


def test_flipped_aware_reward_fails_the_same_check(monkeypatch):
    real = Luo._probe_loss
    monkeypatch.setattr(Luo, "_probe_loss", lambda self, *args: -real(self, *args))
    strategy = Luo(variant="aware", episode_steps=5, policy_lr=1.0, probe_steps=30)
    result = strategy.run(aware_problem(), synthetic_budget(150, 0.05))
    assert result.weights[0] < 1 / 3, result.weights


def test_agnostic_policy_moves_to_the_objective_whose_heldout_loss_keeps_dropping():
    strategy = Luo(variant="agnostic", episode_steps=5, policy_lr=8.0)
    result = strategy.run(agnostic_problem(), synthetic_budget(200, 0.0003))
    learnable, noise = result.weights
    assert learnable > 0.5 + 0.2, result.weights
    first, last = result.trajectory[0].objective_losses, result.trajectory[-1].objective_losses
    assert last["learnable"] < 0.5 * first["learnable"]
    assert abs(last["noise"] - first["noise"]) < 0.1
    assert result.strategy == "luo_agnostic" and result.cost.passes == {"pretrain": 200, "probe": 0}
    assert "heldout_loss" in result.trajectory[0].metrics


def test_flipped_agnostic_reward_fails_the_same_check(monkeypatch):
    # reciprocal held-out losses turn every relative drop into a relative rise of equal sign
    real = Luo._heldout_losses

    def flipped(self, *args):
        return {name: 1 / loss for name, loss in real(self, *args).items()}

    monkeypatch.setattr(Luo, "_heldout_losses", flipped)
    strategy = Luo(variant="agnostic", episode_steps=5, policy_lr=8.0)
    result = strategy.run(agnostic_problem(), synthetic_budget(200, 0.0003))
    assert result.weights[0] < 0.5, result.weights


def test_policy_step_matches_the_hand_computed_reinforce_ascent():
    """p = (3/4, 1/4), action 0, reward 0.3 against a baseline of 0.1."""
    logits, baseline = torch.tensor([math.log(3.0), 0.0]), 0.1
    new, advantage, new_baseline = policy_step(logits, 0, 0.3, baseline, lr=0.1, entropy_coef=0.01)

    p0, p1 = 0.75, 0.25
    entropy = -(p0 * math.log(p0) + p1 * math.log(p1))
    d_log_p0 = (1 - p0, -p1)  # d log p_0 / d logit_j = [j = 0] - p_j
    d_entropy = (-p0 * (math.log(p0) + entropy), -p1 * (math.log(p1) + entropy))
    ascent = [0.2 * dl + 0.01 * dh for dl, dh in zip(d_log_p0, d_entropy, strict=True)]
    by_hand = [math.log(3.0) + 0.1 * ascent[0], 0.0 + 0.1 * ascent[1]]
    assert new.tolist() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx([math.log(3.0) + 0.0047940, -0.0047940], abs=1e-7)
    assert advantage == pytest.approx(0.3 - 0.1)
    assert new_baseline == pytest.approx(0.9 * 0.1 + 0.1 * 0.3)
    assert not new.requires_grad and logits.tolist() == pytest.approx([math.log(3.0), 0.0])


# -- real data ----------------------------------------------------------------------------------
@pytest.mark.dataset
@pytest.mark.parametrize("variant", ["aware", "agnostic"])
def test_runs_on_real_bbbp(tiny_bbbp, variant):
    start = {k: v.clone() for k, v in tiny_bbbp.encoder.state_dict().items()}
    strategy = Luo(variant=variant, episode_steps=5, probe_steps=10)
    result = strategy.run(tiny_bbbp, tiny_budget(steps=5, total=15))
    WeightingResult.model_validate(result.model_dump())
    assert result.objective_names == ["attr_mask", "edge_pred", "motif"]
    assert [p.step for p in result.trajectory] == [5, 10, 15]
    for weights in [result.weights, *(p.weights for p in result.trajectory)]:
        assert min(weights) >= 0 and math.isclose(sum(weights), 1, abs_tol=1e-6)
    assert all(math.isfinite(p.metrics["reward"]) for p in result.trajectory)
    assert result.cost.passes == {"pretrain": 15, "probe": 40 if variant == "aware" else 0}
    assert "our implementation of the proposal" in result.settings["note"]
    trained = result.encoder.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in start.items())
    assert all(torch.equal(tiny_bbbp.encoder.state_dict()[k], v) for k, v in start.items())


# -- settings -----------------------------------------------------------------------------------
def test_unknown_variant_lists_the_choices():
    with pytest.raises(ConfigError, match="aware or agnostic"):
        Luo(variant="both")


@pytest.mark.parametrize(
    "field, value",
    [
        ("episode_steps", 0),
        ("probe_steps", 0),
        ("heldout_batches", 0),
        ("episode_steps", 2.5),
        ("policy_lr", 0.0),
        ("entropy_coef", -0.1),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        Luo(**{field: value})


def test_only_the_aware_variant_needs_a_validation_split():
    assert Luo(variant="aware").requires_validation
    assert not Luo(variant="agnostic").requires_validation
    parts, budget = aware_problem(valid=0), synthetic_budget(10, 0.05)
    with pytest.raises(ConfigError, match="validation"):
        Luo(variant="aware", episode_steps=5).run(parts, budget)
    result = Luo(variant="agnostic", episode_steps=5).run(parts, budget)
    assert len(result.trajectory) == 2


def test_budget_below_one_episode_is_refused():
    with pytest.raises(ConfigError, match="at least 20"):
        Luo(episode_steps=20).run(aware_problem(), synthetic_budget(19, 0.05))


# -- reproducibility ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["aware", "agnostic"])
def test_same_seed_gives_identical_weights(variant):
    def run(seed: int) -> WeightingResult:
        strategy = Luo(seed=seed, variant=variant, episode_steps=5, policy_lr=1.0, probe_steps=20)
        return strategy.run(aware_problem(), synthetic_budget(50, 0.05))

    first, second = run(3), run(3)
    assert first.weights == second.weights
    assert [p.model_dump() for p in first.trajectory] == [p.model_dump() for p in second.trajectory]
    assert [p.weights for p in run(4).trajectory] != [p.weights for p in first.trajectory]
