from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tapweight.downstream import is_better, score, task_loss
from tapweight.errors import ConfigError


def test_roc_auc_averages_only_tasks_with_both_classes_and_ignores_masked_rows():
    y = np.array([[0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=float)
    pred = np.array([[0.1, 0.9, 0.2], [0.9, 0.8, 0.1], [0.2, 0.7, 0.9], [0.8, 0.1, 0.3]])
    mask = np.ones_like(y, dtype=bool)
    mask[3, 1] = False  # task 1 then holds only positives: it must be skipped
    mask[1, 2] = False
    # task 0 is perfectly ranked (1.0);
    # task 2 observed rows 0,2,3: labels 0,1,1, preds .2,.9,.3 -> 1.0
    assert score("roc_auc", y, pred, mask) == pytest.approx(1.0)
    pred[0, 0] = 0.95  # now one negative outranks both positives of task 0
    assert score("roc_auc", y, pred, mask) == pytest.approx((0.5 + 1.0) / 2)


def test_roc_auc_is_nan_when_no_task_has_both_classes():
    y = np.ones((3, 1))
    assert math.isnan(score("roc_auc", y, np.zeros((3, 1)), np.ones((3, 1), dtype=bool)))


def test_regression_metrics_match_hand_computation():
    y = np.array([[1.0], [2.0], [4.0]])
    pred = np.array([[1.0], [3.0], [2.0]])
    mask = np.ones_like(y, dtype=bool)
    assert score("rmse", y, pred, mask) == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    assert score("mae", y, pred, mask) == pytest.approx(1.0)
    assert score("spearman", y, pred, mask) == pytest.approx(0.5)
    assert score("pearson", y, y * 2 + 1, mask) == pytest.approx(1.0)


def test_classification_metrics_on_class_scores():
    y = np.array([[0], [1], [2], [2]], dtype=float)
    pred = np.eye(3)[[0, 1, 2, 1]]
    mask = np.ones((4, 1), dtype=bool)
    assert score("accuracy", y, pred, mask) == pytest.approx(0.75)
    assert score("macro_f1", y, pred, mask) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert -1 <= score("mcc", y, pred, mask) <= 1


def test_unknown_metric_is_refused():
    with pytest.raises(ConfigError, match="unknown metric"):
        score("auc", np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1), dtype=bool))


def test_is_better_respects_direction_and_nan():
    assert is_better("roc_auc", 0.8, 0.7) and not is_better("rmse", 0.8, 0.7)
    assert not is_better("roc_auc", math.nan, 0.1) and is_better("rmse", 1.0, None)


def test_masked_binary_loss_never_reads_missing_labels():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    y = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    mask = ~torch.isnan(y)
    loss = task_loss("binary", logits, y, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, 1].abs().sum() == 0  # missing labels send no gradient
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0].detach(), y[:, 0])
    assert loss.item() == pytest.approx(expected.item())
    # reading the missing labels as 0 would change the loss
    as_zero = task_loss("binary", logits.detach(), torch.nan_to_num(y), torch.ones_like(mask))
    assert as_zero.item() != pytest.approx(loss.item())
