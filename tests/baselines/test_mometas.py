"""MOMETAS: the sampling policy must learn to favour the objective whose held-out loss drops."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from baselines.base import Budget
from baselines.mometas import Mometas
from tapweight.components import Components
from tapweight.downstream import DownstreamTask
from tapweight.errors import ConfigError
from tapweight.objectives.base import Objective
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
    objectives = nn.ModuleList([Learnable(encoder), Noise(encoder)])
    return Components(encoder, objectives, Rows(x=x, y=x @ w), default_collate, task, "synthetic")


def budget(steps: int, lr: float = 0.02, batch_size: int = 32) -> Budget:
    config = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, progress=False)
    return Budget(total_pretrain_steps=steps, pretrain=config)


def learnable_curve(result: WeightingResult) -> list[float]:
    return [point.weights[0] for point in result.trajectory]


def test_policy_moves_toward_the_objective_whose_heldout_loss_drops() -> None:
    finals = []
    for seed in range(3):
        result = Mometas(seed=seed, update_every=10).run(synthetic(), budget(300))
        curve = learnable_curve(result)
        third = len(curve) // 3
        assert result.weights[0] > 0.5, (seed, curve)
        assert sum(curve[-third:]) / third > sum(curve[:third]) / third + 0.05, (seed, curve)
        losses = [p.objective_losses["learnable"] for p in result.trajectory]
        assert losses[-1] < 0.01 * losses[0]  # the rewarded objective really was learned
        finals.append(result.weights[0])
    assert sum(finals) / len(finals) > 0.6


def test_large_entropy_bonus_keeps_the_policy_near_uniform() -> None:
    def mean_distance(entropy_coef: float) -> float:
        result = Mometas(seed=0, update_every=10, entropy_coef=entropy_coef).run(
            synthetic(), budget(300)
        )
        return sum(abs(p - 0.5) for p in learnable_curve(result)) / len(result.trajectory)

    paper, strong = mean_distance(2.0), mean_distance(20.0)
    assert strong < 0.05
    assert strong < paper / 2


def test_reward_sums_floored_relative_drops_and_ignores_tiny_ones() -> None:
    reward = Mometas(min_relative_drop=1e-3).reward([1.0, 2.0, 1.0], [0.5, 2.0001, 3.5])
    assert reward == pytest.approx(0.5 + 0.0 - 1.0)


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
        ("min_relative_drop", -0.1),
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
        Mometas(update_every=1).run(parts, budget(1, batch_size=2))


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
