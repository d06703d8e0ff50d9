"""META-TARTAN: the dev-gradient cosines move the weights the right way, on a toy and on BBBP."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

import baselines.meta_tartan as meta_tartan
from baselines.base import Budget
from baselines.meta_tartan import MetaTartan
from tapweight.components import Components
from tapweight.errors import ConfigError
from tapweight.pretrain import PretrainConfig
from tapweight.result import WeightingResult
from tests.core.synthetic import Rows, make_problem


def synthetic_parts() -> Components:
    encoder, objectives, corpus, task = make_problem()
    return Components(encoder, objectives, corpus, default_collate, task, "synthetic")


def budget(steps: int, lr: float = 0.05, batch_size: int = 32) -> Budget:
    config = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, progress=False)
    return Budget(total_pretrain_steps=steps, pretrain=config)


# The reference's dev-head learning rate (1e-3, 10 steps) barely moves a freshly initialised
# head on this 1-feature toy, so its sign is a coin flip and so are the cosines; at 0.1 the head
# nears its least-squares fit and the cosines carry the signal (target0 > 0, target1 < 0,
# noise ~ 0 since the fitted head's residuals are orthogonal to the feature).
TOY = dict(dev_head_lr=0.1)


def grads(*tensors: list[float] | None) -> tuple[torch.Tensor | None, ...]:
    return tuple(None if t is None else torch.tensor(t) for t in tensors)


def test_weights_mix_this_window_then_move_by_its_mean_cosine_as_the_reference_does():
    """run_mlm_auxiliary.py:292-304, 484-519 and alpha_generator.py:157-178, by hand: two
    micro-batches mixed with the weights the step started with (uniform), then the logits move
    by meta_lr x the mean cosine. Mixing after the update would give other gradients."""
    theta, head = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    weights = meta_tartan._TaskWeights(2, meta_lr=1.0, accum=2, weigh_task=True)
    dev = grads([1.0, 0.0])
    first = [grads([1.0, 0.0], [2.0]), grads([1.0, 1.0], None), grads([0.0, -1.0], None)]
    second = [grads([0.0, 1.0], [0.0]), grads([-1.0, 0.0], None), grads([2.0, 0.0], None)]

    cos_first = weights.accumulate([theta, head], first, dev, shared=1)
    assert cos_first == pytest.approx([1.0, 1 / math.sqrt(2), 0.0], abs=1e-6)
    assert weights.mixture() == pytest.approx([1 / 3] * 3)  # not moved inside the window
    cos_second = weights.accumulate([theta, head], second, dev, shared=1)
    assert cos_second == pytest.approx([0.0, -1.0, 1.0], abs=1e-6)

    # Σ_k (1/3) g_k / 2 over both micro-batches
    third = 1 / 3 / 2
    assert theta.grad.tolist() == pytest.approx([third * (2 + 1), third * (0 + 1)])
    assert head.grad.tolist() == pytest.approx([third * 2])
    weights.step()
    by_hand = [(1 + 0) / 2, (1 / math.sqrt(2) - 1) / 2, (0 + 1) / 2]
    assert weights.logits.tolist() == pytest.approx(by_hand, abs=1e-6)
    softmax = [math.exp(v) / sum(math.exp(u) for u in by_hand) for v in by_hand]
    assert weights.mixture() == pytest.approx(softmax, abs=1e-6)
    assert weights.auxiliary() == pytest.approx([x / sum(softmax[1:]) for x in softmax[1:]])
    assert weights.meta_grad.tolist() == [0.0, 0.0, 0.0]


def test_unweighted_end_task_keeps_one_and_only_the_auxiliaries_move():
    theta = torch.zeros(2, requires_grad=True)
    weights = meta_tartan._TaskWeights(2, meta_lr=0.5, accum=1, weigh_task=False)
    step = [grads([1.0, 0.0]), grads([1.0, 1.0]), grads([0.0, -1.0])]
    weights.accumulate([theta], step, grads([1.0, 0.0]), shared=1)
    assert theta.grad.tolist() == pytest.approx([1.0 + 0.5, 0.5 * (1 - 1)])
    weights.step()
    assert weights.logits.tolist() == pytest.approx([0.5 / math.sqrt(2), 0.0], abs=1e-6)
    assert weights.mixture()[0] == 1.0


@pytest.mark.parametrize("accum", [1, 2])
def test_each_step_mixes_with_the_weights_of_the_cosines_before_it(monkeypatch, accum):
    """The search's own loop: the mixture a micro-batch uses is softmax(meta_lr x the summed
    window means of the EARLIER steps' cosines), never this step's."""
    seen = []
    accumulate = meta_tartan._TaskWeights.accumulate

    def spy(self, *args, **kwargs):
        mixture = self.mixture()
        seen.append((mixture, accumulate(self, *args, **kwargs)))
        return seen[-1][1]

    monkeypatch.setattr(meta_tartan._TaskWeights, "accumulate", spy)
    meta_lr = 0.5
    MetaTartan(meta_lr=meta_lr, grad_accum_steps=accum, **TOY).run(synthetic_parts(), budget(6))
    assert len(seen) == 6 * accum
    logits = torch.zeros(4)
    for step in range(6):
        window = seen[step * accum : (step + 1) * accum]
        for mixture, _ in window:
            assert mixture == pytest.approx(torch.softmax(logits, 0).tolist(), abs=1e-6)
        logits += meta_lr * torch.tensor([c for _, c in window]).mean(0)


def test_the_dev_head_is_an_mlp_fitted_on_one_sample_and_differentiated_on_another(monkeypatch):
    """endtask_aware.py:232-310: fit on a dev sample (at most classf_ft_iters = 10 steps),
    gradient on a fresh one; one fit per optimizer step (reset after each, :516)."""
    fitted, differentiated = [], []
    fit, gradient = MetaTartan._fit_dev_head, MetaTartan._dev_gradient

    def fit_spy(self, model, batch):
        head, steps = fit(self, model, batch)
        fitted.append((batch["x"], head, steps))
        return head, steps

    def gradient_spy(self, model, head, batch):
        differentiated.append((batch["x"], head))
        return gradient(self, model, head, batch)

    monkeypatch.setattr(MetaTartan, "_fit_dev_head", fit_spy)
    monkeypatch.setattr(MetaTartan, "_dev_gradient", gradient_spy)
    result = MetaTartan(grad_accum_steps=2).run(synthetic_parts(), budget(3))
    assert len(fitted) == 3 and len(differentiated) == 6
    for step, (x, head, steps) in enumerate(fitted):
        assert 1 <= steps <= 10
        assert [type(m) for m in head] == [nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout, nn.Linear]
        for other, used in differentiated[2 * step : 2 * step + 2]:
            assert used is head and not torch.equal(other, x)
    assert result.cost.passes["dev_head"] == sum(steps for _, _, steps in fitted)


def test_weight_moves_to_the_aligned_objective_and_off_the_noise():
    result = MetaTartan(**TOY).run(synthetic_parts(), budget(200))
    useful, unrelated, noise = result.weights
    assert useful > 1 / 3 + 0.1 and noise < 1 / 3, result.weights
    assert unrelated < 1 / 3
    first, last = result.trajectory[0], result.trajectory[-1]
    assert last.weights[0] > first.weights[0]
    assert last.metrics["task_weight"] > 0.25  # the end task agrees with its own dev gradient


def test_a_flipped_cosine_fails_the_same_check(monkeypatch):
    cosine = meta_tartan._cosine
    monkeypatch.setattr(meta_tartan, "_cosine", lambda a, b: -cosine(a, b))
    result = MetaTartan(**TOY).run(synthetic_parts(), budget(200))
    useful, _, noise = result.weights
    assert not (useful > 1 / 3 and noise < 1 / 3), result.weights


def test_result_trajectory_and_same_seed_reproducibility():
    seen = []
    first = MetaTartan(seed=3, **TOY).run(synthetic_parts(), budget(40), callback=seen.append)
    second = MetaTartan(seed=3, **TOY).run(synthetic_parts(), budget(40))
    assert first.weights == second.weights
    assert [p.weights for p in first.trajectory] == [p.weights for p in second.trajectory]
    assert first.strategy == "meta_tartan" and first.objective_names == [
        "target0",
        "target1",
        "target2",
    ]
    assert [p.step for p in first.trajectory] == list(range(2, 41, 2)) and seen == first.trajectory
    assert {"task_weight", "task_loss", "cos_target0", "cos_target2"} <= set(
        first.trajectory[0].metrics
    )
    # one budget step = one optimizer step over grad_accum_steps (2) micro-batches
    assert first.cost.passes["joint"] == 80 and first.cost.passes["dev_head"] >= 40
    assert first.cost.full_trainings == 1
    assert set(first.native_scores) == {"valid_rmse"}  # the test split is the protocol's
    assert 0 < first.task_weight < 1 and "task_weight" not in first.settings
    assert first.task_weight == first.trajectory[-1].metrics["task_weight"]


def test_without_a_task_weight_the_end_task_stays_at_one():
    parts = synthetic_parts()
    result = MetaTartan(include_task_weight=False, **TOY).run(parts, budget(10))
    assert result.task_weight == 1.0
    assert all(p.metrics["task_weight"] == 1.0 for p in result.trajectory)
    assert math.isclose(sum(result.weights), 1.0, abs_tol=1e-6)
    assert not torch.equal(result.encoder.linear.weight, parts.encoder.linear.weight)


@pytest.mark.parametrize(
    "field, value",
    [
        ("meta_lr", 0.0),
        ("dev_head_lr", -1e-3),
        ("dev_head_weight_decay", -0.1),
        ("dev_head_tol", 0.0),
        ("dev_head_max_steps", 0),
        ("dev_head_max_steps", 2.5),
        ("dev_head_dropout", 1.0),
        ("grad_accum_steps", 0),
        ("max_grad_norm", 0.0),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        MetaTartan(**{field: value})


def test_an_empty_validation_split_is_refused():
    parts = synthetic_parts()
    empty = Rows(x=torch.zeros(0, 8), labels=torch.zeros(0))
    parts = dataclasses.replace(parts, task=dataclasses.replace(parts.task, valid=empty))
    with pytest.raises(ConfigError, match="needs a labeled validation split"):
        MetaTartan().run(parts, budget(5))


@pytest.mark.dataset
@pytest.mark.slow
def test_bbbp_at_cpu_scale(data_dir):
    from tapweight.components import build_components
    from tapweight.models import HuGNN
    from tapweight.objectives import build_objectives

    names = ["attr_mask", "edge_pred", "motif"]
    parts = build_components("bbbp", "gin", names, data_dir=data_dir)
    torch.manual_seed(0)
    encoder = HuGNN("gin", num_layers=2, emb_dim=32)
    objectives = build_objectives(names, encoder, "molecule")
    parts = dataclasses.replace(parts, encoder=encoder, objectives=objectives)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}

    result = MetaTartan().run(parts, budget(12, lr=1e-3, batch_size=32))

    again = WeightingResult.model_validate(result.model_dump())
    assert again.objective_names == names and len(again.weights) == 3
    assert all(w >= 0 for w in result.weights) and math.isclose(
        sum(result.weights), 1, abs_tol=1e-6
    )
    assert set(result.native_scores) == {"valid_roc_auc"}
    assert all(0 <= s <= 1 for s in result.native_scores.values()), result.native_scores
    trained = result.encoder.state_dict()
    assert any(not torch.equal(trained[k], before[k]) for k in before)
    assert all(torch.equal(encoder.state_dict()[k], before[k]) for k in before)  # copied
    assert len(result.trajectory) == 12 and result.cost.passes["joint"] == 12 * 2  # 2 micro-batches
    assert all(math.isfinite(v) for p in result.trajectory for v in p.metrics.values())
