"""MOMETAS: the sampling policy must learn to favour the objective whose held-out loss drops."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from baselines.base import Budget
from baselines.mometas import Mometas, _Policy, reward
from tapweight.components import Components
from tapweight.downstream import DownstreamTask
from tapweight.errors import ConfigError
from tapweight.objectives.base import Objective, Objectives
from tapweight.pretrain import PretrainConfig
from tapweight.result import WeightingResult

from ..core.synthetic import Rows


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run many times faster on one thread than on two contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Encoder(nn.Module):
    def __init__(self, dim: int, out_dim: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, out_dim, bias=False)
        self.out_dim = out_dim

    def forward(self, batch):
        return self.linear(batch["x"])


class Learnable(Objective):
    """Regress a fixed linear function of x: its held-out loss can be driven down steadily."""

    name = "learnable"
    domain = "synthetic"

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.head = nn.Linear(encoder.out_dim, 1, bias=False)

    def loss(self, encoder, batch):
        return F.mse_loss(self.head(encoder(batch)).squeeze(-1), batch["y"])


class Noise(Objective):
    """Regress fresh noise: nothing to learn, its held-out loss cannot drop (head starts at 0)."""

    name = "noise"
    domain = "synthetic"

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.head = nn.Linear(encoder.out_dim, 1, bias=False)
        nn.init.zeros_(self.head.weight)

    def loss(self, encoder, batch):
        out = self.head(encoder(batch)).squeeze(-1)
        return F.mse_loss(out, torch.randn_like(out))


def synthetic(dim: int = 8, size: int = 512) -> Components:
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(size, dim, generator=g), torch.randn(dim, generator=g)
    labeled = Rows(x=x[:16], labels=x[:16] @ w)
    task = DownstreamTask(
        name="synthetic",
        task_type="regression",
        metric="rmse",
        num_outputs=1,
        train=labeled,
        valid=labeled,
        test=labeled,
        collate=default_collate,
    )
    torch.manual_seed(0)
    encoder = Encoder(dim)
    objectives = Objectives([Learnable(encoder), Noise(encoder)])
    return Components(encoder, objectives, Rows(x=x, y=x @ w), default_collate, task, "synthetic")


def budget(steps: int, lr: float = 0.02, batch_size: int = 32) -> Budget:
    config = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, progress=False)
    return Budget(total_pretrain_steps=steps, pretrain=config)


def learnable_curve(result: WeightingResult) -> list[float]:
    return [point.weights[0] for point in result.trajectory]


def test_policy_moves_toward_the_objective_whose_heldout_loss_drops() -> None:
    """While the learnable loss falls the policy favours it; once that loss is flat (changes
    under the absolute threshold earn nothing) the entropy bonus pulls it back toward uniform."""
    peaks = []
    for seed in range(3):
        result = Mometas(seed=seed, update_every=10).run(synthetic(), budget(300))
        curve = learnable_curve(result)
        third = len(curve) // 3
        first, middle = curve[:third], curve[third : 2 * third]
        assert sum(middle) / third > sum(first) / third + 0.05, (seed, curve)
        assert max(curve) > 0.6 and min(curve[third:]) > 0.4, (seed, curve)
        losses = [p.objective_losses["learnable"] for p in result.trajectory]
        assert losses[-1] < 0.01 * losses[0]  # the rewarded objective really was learned
        peaks.append(max(curve))
    assert sum(peaks) / len(peaks) > 0.65


def test_large_entropy_bonus_keeps_the_policy_near_uniform() -> None:
    def mean_distance(entropy_coef: float) -> float:
        result = Mometas(seed=0, update_every=10, entropy_coef=entropy_coef).run(
            synthetic(), budget(300)
        )
        return sum(abs(p - 0.5) for p in learnable_curve(result)) / len(result.trajectory)

    paper, strong = mean_distance(2.0), mean_distance(20.0)
    assert strong < 0.05
    assert strong < paper / 2


def test_reward_counts_absolute_changes_over_the_threshold_as_the_reference_does() -> None:
    """run_pretraining.py:163-164: the threshold is on |before - after|, not on the ratio."""
    before, after = [10.0, 0.1, 2.0, 1.0], [9.995, 0.0995, 1.0, 3.5]
    by_hand = (
        (10.0 - 9.995 + 1e-6) / (10.0 + 1e-6)  # |Δ| = 5e-3 counts (a relative 5e-4 would not)
        + 0.0  # |Δ| = 5e-4 does not count (a relative 5e-3 would)
        + (2.0 - 1.0 + 1e-6) / (2.0 + 1e-6)
        - 1.0  # a rise of 250% is floored at -1
    )
    assert reward(before, after, 1e-3) == pytest.approx(by_hand, rel=1e-12)
    assert Mometas().reward(before, after) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.0005 + 0.5 - 1.0, abs=1e-6)


def test_reinforce_step_with_entropy_bonus_matches_the_hand_computed_one() -> None:
    """run_pretraining.py:62-71 for two objectives: p = (3/4, 1/4), rollout [0, 0, 1]."""
    lr, gamma, reward_value = 0.1, 2.0, 0.4
    policy = _Policy(2, lr, gamma, seed=0)
    with torch.no_grad():
        policy.logits.copy_(torch.tensor([math.log(3.0), 0.0]))
    policy.rollout = [0, 0, 1]
    policy.update(reward_value)

    p0, p1 = 0.75, 0.25
    entropy = -(p0 * math.log(p0) + p1 * math.log(p1))
    # d log p_i / d logit_j = [i = j] - p_j, summed over the rollout (two 0s and one 1)
    d_log_probs = (2 * (1 - p0) - p0, 2 * -p1 + (1 - p1))  # (-1/4, 1/4)
    # d H / d logit_j = -p_j (log p_j + H)
    d_entropy = (-p0 * (math.log(p0) + entropy), -p1 * (math.log(p1) + entropy))
    grad = [-reward_value * dl - gamma * dh for dl, dh in zip(d_log_probs, d_entropy, strict=True)]
    by_hand = [math.log(3.0) - lr * grad[0], 0.0 - lr * grad[1]]
    assert policy.logits.tolist() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx([1.047414, 0.051198], abs=1e-6)
    assert policy.rollout == []


def test_trajectory_callback_and_cost() -> None:
    seen = []
    parts = synthetic()
    result = Mometas(update_every=10, heldout_batches=2).run(
        parts, budget(55), callback=seen.append
    )
    assert [p.step for p in result.trajectory] == [0, 10, 20, 30, 40, 50]
    assert seen == result.trajectory
    assert result.trajectory[0].weights == [0.5, 0.5] and result.trajectory[0].metrics == {}
    assert all("reward" in p.metrics for p in result.trajectory[1:])
    # 6 measurements x 2 objectives x 2 held-out batches; the 5 steps after the last update count
    assert result.cost.passes == {"pretrain": 55, "heldout_eval": 24}
    assert result.cost.full_trainings == 1 and result.cost.device == "cpu"
    assert result.settings["update_every"] == 10 and result.strategy == "mometas"
    assert result.weights == result.trajectory[-1].weights


def test_same_seed_reproduces_and_another_seed_differs() -> None:
    def weights(seed: int) -> list[float]:
        return Mometas(seed=seed, update_every=10).run(synthetic(), budget(100)).weights

    assert weights(0) == weights(0)
    assert weights(0) != weights(1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("update_every", 0),
        ("heldout_batches", 0),
        ("policy_lr", 0.0),
        ("entropy_coef", -1.0),
        ("reward_threshold", -0.1),
        ("heldout_draw", "sometimes"),
        ("heldout_source", "test"),
        ("max_grad_norm", 0.0),
    ],
)
def test_bad_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        Mometas(**{field: value})


def test_budget_below_one_policy_update_is_refused() -> None:
    strategy, parts = Mometas(update_every=50), synthetic()
    assert strategy.minimum_budget(2, budget(49)) == 50
    with pytest.raises(ConfigError, match="at least 50"):
        strategy.check(parts, budget(49))
    with pytest.raises(ConfigError, match="at least 50"):
        strategy.run(parts, budget(49))


def test_corpus_too_small_to_hold_out_is_refused() -> None:
    parts = synthetic(size=8)
    with pytest.raises(ConfigError, match="corpus"):
        Mometas(update_every=1, heldout_source="split").run(parts, budget(1, batch_size=2))
    Mometas(update_every=1).run(parts, budget(1, batch_size=2))  # the reference holds none out


@pytest.mark.parametrize(("draw", "draws"), [("fresh", 1 + 5), ("fixed", 1)])
def test_fresh_heldout_batches_are_drawn_after_every_update(monkeypatch, draw, draws) -> None:
    """run_pretraining.py:413-416: a new sample per objective after each policy update."""
    calls = []
    original = Mometas._draw

    def spy(self, *args):
        calls.append(args[-1])
        return original(self, *args)

    monkeypatch.setattr(Mometas, "_draw", spy)
    Mometas(update_every=10, heldout_draw=draw).run(synthetic(), budget(50))
    assert calls == [2] * draws  # one draw = a sample for each of the 2 objectives


def test_split_source_holds_its_batches_out_of_training() -> None:
    parts = synthetic(size=100)
    train, pool = Mometas(heldout_source="split")._split(parts.corpus, 10)
    assert len(pool) == 10 and len(train) == 90
    assert not set(train.indices) & set(pool.indices)
    assert Mometas()._split(parts.corpus, 10) == (parts.corpus, parts.corpus)


@pytest.mark.dataset
def test_bbbp_at_cpu_scale(data_dir) -> None:
    from tapweight.components import build_components
    from tapweight.models import HuGNN
    from tapweight.objectives import build_objectives

    names = ["attr_mask", "edge_pred", "motif"]
    parts = build_components("bbbp", "gin", names, data_dir=data_dir)
    torch.manual_seed(0)
    encoder = HuGNN("gin", num_layers=2, emb_dim=32)
    parts = dataclasses.replace(
        parts, encoder=encoder, objectives=build_objectives(names, encoder, "molecule")
    )
    start = {k: v.clone() for k, v in parts.encoder.state_dict().items()}

    result = Mometas(update_every=10).run(parts, budget(40, lr=1e-3))

    WeightingResult.model_validate(result.model_dump())
    assert result.objective_names == names
    assert all(w > 0 for w in result.weights) and sum(result.weights) == pytest.approx(1)
    assert [p.step for p in result.trajectory] == [0, 10, 20, 30, 40]
    assert all(set(p.objective_losses) == set(names) for p in result.trajectory)
    assert result.cost.passes["pretrain"] == 40
    trained = result.encoder.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in start.items())
    assert all(torch.equal(parts.encoder.state_dict()[k], v) for k, v in start.items())
