"""Passes that only measure leave the model as it was, and no strategy reads the test split."""

from __future__ import annotations

import copy

import pytest
import torch

from baselines import make_strategy
from baselines.meta_tartan import MetaTartan
from tapweight.core import TapWeight, TapWeightConfig
from tapweight.downstream.heads import TaskModel
from tapweight.training import to_device

from .conftest import tiny_budget

pytestmark = pytest.mark.dataset


def buffers(module: torch.nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for b in module.buffers()]


def same(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, module.buffers(), strict=True))


@pytest.fixture
def tapweight(tiny_bbbp):
    config = TapWeightConfig.for_task(
        "molecule", tiny_bbbp.task.task_type, iterations=2, pretrain_batch_size=32,
        finetune_batch_size=16, valid_batch_size=32, progress=False,
    )  # fmt: skip
    return TapWeight(
        tiny_bbbp.encoder, tiny_bbbp.objectives, tiny_bbbp.corpus, tiny_bbbp.task, config
    )


def test_the_reweight_level_never_moves_the_finetuned_models_batchnorm_statistics(tapweight):
    reweight, model = tapweight.levels["reweight"], tapweight.downstream()
    assert any(b.numel() > 1 for b in model.buffers())  # the GIN has BatchNorm
    before = buffers(model)
    reweight.training_step(reweight.get_batch())  # a train-mode pass on a validation batch
    assert same(before, model)


@pytest.mark.parametrize("level", ["pretrain", "finetune"])
def test_only_a_levels_own_descent_moves_its_statistics(tapweight, level):
    problem = tapweight.levels[level]
    batch = problem.get_batch()
    before = buffers(problem.module)
    problem.training_step(batch)  # how darts/exact re-evaluate a level on its batch
    assert same(before, problem.module)
    problem.get_loss(batch)  # the level's own step: statistics move as in any training
    assert not same(before, problem.module)


def test_meta_tartans_dev_pass_leaves_the_model_as_it_was(tiny_bbbp):
    task = tiny_bbbp.task
    model = TaskModel(copy.deepcopy(tiny_bbbp.encoder), task.task_type, task.num_outputs).train()
    batch = to_device(next(iter(task.loader("valid", 32))), "cpu")
    before = buffers(model)
    strategy = MetaTartan(dev_head_max_steps=2)
    head, _ = strategy._fit_dev_head(model, batch)
    strategy._dev_gradient(model, head, batch)
    assert same(before, model)


class CountingLoader:
    """Wraps a task's ``loader`` to count how often each split is read."""

    def __init__(self, task) -> None:
        self.reads: dict[str, int] = {}
        self._loader = task.loader

    def __call__(self, split, *args, **kwargs):
        self.reads[split] = self.reads.get(split, 0) + 1
        return self._loader(split, *args, **kwargs)


@pytest.mark.parametrize(
    ("spec", "settings"),
    [("tapweight", {}), ("meta_tartan", {"dev_head_max_steps": 2}), ("grid", {"resolution": 1})],
)
def test_no_search_reads_the_test_split(tiny_bbbp, monkeypatch, spec, settings):
    """The test split belongs to the protocol's end; native scores are validation scores."""
    counter = CountingLoader(tiny_bbbp.task)
    monkeypatch.setattr(tiny_bbbp.task, "loader", counter)
    result = make_strategy(spec, seed=0, **settings).run(tiny_bbbp, tiny_budget(3, total=9))
    assert counter.reads.get("test", 0) == 0 and counter.reads.get("valid", 0) > 0
    assert set(result.native_scores) <= {"valid_roc_auc"}
