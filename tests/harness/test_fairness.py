"""The protocol's fairness rules, checked on one trial at a time (in process, no Ray): the test
split is read once per trial, at the protocol's end, and no search shares the protocol's seeds."""

from __future__ import annotations

import pytest

from harness import protocol
from harness.cells import Cell, build_parts, cell_strategy, score_cell, search_weights
from harness.rundir import RunDirectory
from harness.spec import parse_spec
from tests.support import tiny_spec

STRATEGIES = ["tapweight", "uniform", {"name": "grid", "settings": {"resolution": 1}}]


def run_trial(tmp_path, strategy, seed=0):
    spec = parse_spec(tiny_spec(strategies=[strategy], seeds=[seed], budget_pretrain_steps=10))
    cell = Cell(spec.datasets[0], spec.strategies[0].label, seed)
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create(spec)
    parts = build_parts(spec, cell.dataset, seed, None)
    return spec, cell, run_dir, parts


def search(spec, cell, run_dir, parts):
    strategy = cell_strategy(spec, cell, run_dir)
    return search_weights(spec, cell, strategy, parts, "cpu", lambda _: None)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_test_split_is_read_once_per_trial_at_the_protocols_end(tmp_path, strategy):
    spec, cell, run_dir, parts = run_trial(tmp_path, strategy)
    loader, reads = parts.task.loader, []

    def counting(split, *args, **kwargs):
        reads.append(split)
        return loader(split, *args, **kwargs)

    parts.task.loader = counting
    result = search(spec, cell, run_dir, parts)
    assert "test" not in reads  # the search and the native scores are validation only
    row = score_cell(spec, cell, parts, result, 0.0, "cpu")
    assert reads.count("test") == spec.protocol.finetune_seeds == 1
    assert reads[-1] == "test" and len(row.retrained.test) == 1


@pytest.mark.parametrize("seed", [0, 3])
def test_no_search_trial_shares_a_seed_with_the_protocols_final_runs(tmp_path, monkeypatch, seed):
    """Else, for seed 0, the protocol replays grid's winning trial and its `valid` is a
    best-of-N rather than a fresh run."""
    import baselines.trial
    import harness.protocol
    import tapweight.pretrain

    seeds: dict[str, set[int]] = {"search": set(), "protocol": set()}
    phase = "search"

    def recording(module, name):
        real = getattr(module, name)

        def wrapped(*args, **kwargs):
            config = kwargs.get("config") or next(
                a for a in args if hasattr(a, "seed") and hasattr(a, "device")
            )
            seeds[phase].add(config.seed)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)

    recording(tapweight.pretrain, "continued_pretrain")
    recording(baselines.trial, "finetune")
    recording(harness.protocol, "finetune")
    spec, cell, run_dir, parts = run_trial(
        tmp_path, {"name": "grid", "settings": {"resolution": 1}}, seed
    )
    result = search(spec, cell, run_dir, parts)
    phase = "protocol"
    score_cell(spec, cell, parts, result, 0.0, "cpu")
    assert seeds["search"] and seeds["protocol"]
    assert not seeds["search"] & seeds["protocol"], seeds
    assert protocol.search_seed(seed) not in protocol.finetune_seeds(seed, 20) + [seed]


def test_the_row_carries_meta_tartans_end_task_weight_apart_from_the_objective_weights(tmp_path):
    strategy = {"name": "meta_tartan", "settings": {"dev_head_max_steps": 2}}
    spec, cell, run_dir, parts = run_trial(tmp_path, strategy)
    result = search(spec, cell, run_dir, parts)
    row = score_cell(spec, cell, parts, result, 0.0, "cpu")
    assert row.task_weight == result.task_weight and 0 < row.task_weight < 1
    assert abs(sum(row.weights) - 1) < 1e-6 and "task_weight" not in row.settings
