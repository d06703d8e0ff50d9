"""A text file of the user's own, run by the local runner: its rows, its report, and each
trial's artifact, a transformers folder that AutoModel loads."""

from __future__ import annotations

from harness.local import run_local
from harness.spec import parse_spec
from tests.data.test_user_datasets import texts


def test_a_text_mapping_runs_and_keeps_a_loadable_encoder(tmp_path):
    from transformers import AutoModel

    from tapweight.artifacts import text_folder

    dataset = {"name": "reviews", "path": str(texts(tmp_path, rows=60, classes=2)),
               "text_column": "body", "label_column": "stars"}  # fmt: skip
    spec = parse_spec({
        "name": "own-text", "datasets": [dataset], "encoder": "tiny-bert", "objectives": ["mlm"],
        "strategies": ["uniform", "no_cp"], "seeds": [0], "budget_pretrain_steps": 2,
        "protocol": {"pretrain": {"steps": 2, "batch_size": 8},
                     "finetune": {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 8}},
    })  # fmt: skip
    run = run_local(spec, tmp_path / "run", progress=False)
    rows = run.rows()
    assert {row.dataset for row in rows} == {"reviews"} and len(rows) == 2
    assert rows[0].retrained.metric == "macro_f1"
    artifacts = {a.strategy: a for a in run.artifacts()}
    assert set(artifacts) == {"uniform", "no_cp"} and artifacts["uniform"].weights == [1.0]
    folder = text_folder(run.artifacts_dir / artifacts["uniform"].id)
    assert folder is not None and AutoModel.from_pretrained(folder).config.hidden_size == 32
    archive = run.artifact_archive(artifacts["uniform"].id)
    assert archive is not None and archive.stat().st_size > 1000
    assert run.artifact_archive("../../etc") is None
