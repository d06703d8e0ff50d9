"""Downstream metrics, computed from numpy arrays so every strategy is scored the same way."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from tapweight.errors import ConfigError

__all__ = ["METRICS", "HIGHER_IS_BETTER", "score", "metrics_for", "is_better"]


def roc_auc(y: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    """Mean ROC-AUC over tasks that have both classes among their observed labels."""
    aucs = []
    for t in range(y.shape[1]):
        observed = mask[:, t]
        labels = y[observed, t]
        if labels.size and 0 < labels.sum() < labels.size:
            aucs.append(skm.roc_auc_score(labels, pred[observed, t]))
    return float(np.mean(aucs)) if aucs else math.nan


def _flat(y: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return y[mask], pred[mask]


def rmse(y, pred, mask) -> float:
    a, b = _flat(y, pred, mask)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def mae(y, pred, mask) -> float:
    a, b = _flat(y, pred, mask)
    return float(np.mean(np.abs(a - b)))


def pearson(y, pred, mask) -> float:
    a, b = _flat(y, pred, mask)
    return float(stats.pearsonr(a, b).statistic) if a.size > 1 and np.std(b) > 0 else math.nan


def spearman(y, pred, mask) -> float:
    a, b = _flat(y, pred, mask)
    return float(stats.spearmanr(a, b).statistic) if a.size > 1 and np.std(b) > 0 else math.nan


def _classes(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class labels and predicted classes; ``pred`` holds per-class scores ``[n, classes]``."""
    return y.reshape(-1).astype(int), pred.argmax(axis=1)


def accuracy(y, pred, mask) -> float:
    if pred.shape[1] == 1 or mask.shape[1] > 1:  # binary (multi-)task: threshold the logits at 0
        return float(((pred > 0) == (y > 0.5))[mask].mean())
    a, b = _classes(y, pred)
    return float((a == b).mean())


def macro_f1(y, pred, mask) -> float:
    a, b = _classes(y, pred)
    return float(skm.f1_score(a, b, average="macro"))


def f1(y, pred, mask) -> float:
    a, b = _classes(y, pred)
    return float(skm.f1_score(a, b, average="binary" if pred.shape[1] == 2 else "macro"))


def mcc(y, pred, mask) -> float:
    a, b = _classes(y, pred)
    return float(skm.matthews_corrcoef(a, b))


METRICS = {
    "roc_auc": roc_auc,
    "rmse": rmse,
    "mae": mae,
    "pearson": pearson,
    "spearman": spearman,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "f1": f1,
    "mcc": mcc,
}
HIGHER_IS_BETTER = {
    "roc_auc": True, "rmse": False, "mae": False, "pearson": True, "spearman": True,
    "accuracy": True, "macro_f1": True, "f1": True, "mcc": True,
}  # fmt: skip
_BY_TASK_TYPE = {
    "binary": ("roc_auc", "accuracy"),
    "multiclass": ("accuracy", "macro_f1", "f1", "mcc"),
    "regression": ("rmse", "mae", "pearson", "spearman"),
}


def metrics_for(task_type: str) -> tuple[str, ...]:
    return _BY_TASK_TYPE[task_type]


def score(name: str, y: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    """``y``/``mask`` are ``[n, tasks]``; ``pred`` is ``[n, tasks]`` (binary, regression) or
    ``[n, classes]`` scores (multiclass)."""
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name](y, pred, mask)


def is_better(metric: str, candidate: float, best: float | None) -> bool:
    """Whether ``candidate`` improves on ``best`` (NaN never does)."""
    if math.isnan(candidate):
        return False
    if best is None or math.isnan(best):
        return True
    return candidate > best if HIGHER_IS_BETTER[metric] else candidate < best
