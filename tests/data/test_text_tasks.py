"""Text datasets (GLUE, TAPT, AG News): loading, splits and errors.

Real-data tests read ``TAPWEIGHT_DATA_DIR`` and are skipped when it is unset. Datasets missing
from the shared data (MRPC, CoLA, ChemProt, SciERC) are written here in their canonical formats.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tapweight.data.text_tasks import TextTask, load_text_task
from tapweight.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _tsv(rows: list[list[str]]) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# ------------------------------------------------------------------------------------------
# Real data


@pytest.mark.dataset
def test_rte_sizes_labels_and_pairs(need, data_dir: Path) -> None:
    need("glue_rte")
    task = load_text_task("glue_rte", data_dir, seed=0)
    assert isinstance(task, TextTask)
    assert len(task.train) + len(task.valid) == 2490
    assert len(task.test) == 277
    assert abs(len(task.valid) - 2490 / 9) <= 1
    assert task.label_names == ["entailment", "not_entailment"]
    assert task.task_type == "multiclass" and task.metric == "accuracy"
    assert task.skipped_rows == 0
    for example in task.train + task.valid + task.test:
        assert example.text_pair
        assert example.label in (0, 1) and isinstance(example.label, int)
    # Both classes occur in the test (dev) set, and the indices follow the sorted names.
    first_dev = task.test[0]
    assert first_dev.text.startswith("Dana Reeve") and first_dev.label == 1  # not_entailment
    summary = task.summary()
    assert summary["classes"] == 2 and summary["test"] == 277
    assert summary["train"] + summary["valid"] == 2490
    assert summary["unlabeled"] == len(task.train) > 0


@pytest.mark.dataset
def test_rte_split_is_seeded_and_disjoint(need, data_dir: Path) -> None:
    need("glue_rte")
    a = load_text_task("glue_rte", data_dir, seed=0)
    b = load_text_task("glue_rte", data_dir, seed=0)
    c = load_text_task("glue_rte", data_dir, seed=1)
    assert a.valid == b.valid and a.train == b.train
    assert a.valid != c.valid
    assert a.test == c.test  # the dev/test set never depends on the seed

    with (data_dir / "glue_rte" / "train.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    names = a.label_names
    in_file = Counter((r[1], r[2], names.index(r[3])) for r in rows)
    split = Counter((e.text, e.text_pair, e.label) for e in a.train + a.valid)
    assert split == in_file  # every train row lands in exactly one of train/valid
    shared = {(e.text, e.text_pair, e.label) for e in a.train} & {
        (e.text, e.text_pair, e.label) for e in a.valid
    }
    # The only overlap allowed is a row that the file itself holds twice.
    assert all(in_file[row] >= 2 for row in shared)


@pytest.mark.dataset
def test_stsb_regression_labels(need, data_dir: Path) -> None:
    need("glue_stsb")
    task = load_text_task("glue_stsb", data_dir)
    assert task.task_type == "regression" and task.label_names == []
    assert len(task.train) + len(task.valid) == 5749 and len(task.test) == 1500
    labels = [e.label for e in task.train + task.valid + task.test]
    assert all(isinstance(y, float) for y in labels)
    assert min(labels) >= 0.0 and max(labels) <= 5.0
    assert len(set(labels)) > 20  # real scores, not collapsed to classes
    assert task.test[0].label == pytest.approx(5.0)


@pytest.mark.dataset
def test_citation_intent(need, data_dir: Path) -> None:
    need("tapt_citation_intent")
    folder = data_dir / "tapt_citation_intent"
    with (folder / "train.jsonl").open(encoding="utf-8") as handle:
        train_labels = {json.loads(line)["label"] for line in handle if line.strip()}
    assert len(train_labels) == 6  # ACL-ARC has six citation intents

    task = load_text_task("tapt_citation_intent", data_dir)
    assert task.label_names == sorted(train_labels)
    assert (len(task.train), len(task.valid), len(task.test)) == (1688, 114, 139)
    assert task.metric == "macro_f1"
    assert {e.label for e in task.train} == set(range(6))
    assert all(e.text_pair is None for e in task.train)

    with (folder / "domain.1xTAPT.txt").open(encoding="utf-8", newline="") as handle:
        tapt_lines = [line.strip() for line in handle if line.strip()]
    assert task.unlabeled and task.unlabeled == tapt_lines


@pytest.mark.dataset
def test_agnews_from_test_csv_only(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not any((data_dir / f / "test.csv").is_file() for f in ("agnews", "agnews_test_subset")):
        pytest.skip("AG News test.csv is not in TAPWEIGHT_DATA_DIR")
    if any((data_dir / f / "train.csv").is_file() for f in ("agnews", "agnews_test_subset")):
        pytest.skip("this data folder has AG News train.csv; the test-only split is not used")
    with caplog.at_level("WARNING", logger="tapweight.data"):
        task = load_text_task("agnews", data_dir, seed=0)
    assert "8:1:1" in caplog.text
    assert len(task.label_names) == 4
    sizes = (len(task.train), len(task.valid), len(task.test))
    assert sum(sizes) == 7600 and sizes == (6080, 760, 760)
    labels = Counter(e.label for e in task.train + task.valid + task.test)
    assert labels == {0: 1900, 1: 1900, 2: 1900, 3: 1900}
    first = next(
        e for e in task.train + task.valid + task.test if e.text.startswith("Fears for T N")
    )
    assert first.text.startswith("Fears for T N pension after talks. Unions representing")
    assert first.label == 2  # Class Index 3 (Business) -> 2
    assert load_text_task("agnews", data_dir, seed=0).test == task.test


# ------------------------------------------------------------------------------------------
# Datasets not in the shared folder, written in their canonical formats

_MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
_PAIRS = [
    (
        'Amrozi accused his brother , whom he called " the witness " , of deliberately distorting '
        "his evidence .",
        'Referring to him as only " the witness " , Amrozi accused his brother of '
        "deliberately distorting his evidence .",
    ),
    (
        "Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .",
        "Yucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for $ 1.8 "
        "billion in 1998 .",
    ),
    (
        "They had published an advertisement on the Internet on June 10 , offering the cargo for "
        "sale , he added .",
        "On June 10 , the ship 's owners had published an advertisement on the "
        "Internet , offering the explosives for sale .",
    ),
]


def _mrpc(tmp_path: Path, n_train: int = 18, malformed: bool = True) -> Path:
    rows = [_MRPC_HEADER]
    for i in range(n_train):
        s1, s2 = _PAIRS[i % 3]
        rows.append([str(i % 2), str(702876 + i), str(701795 + i), f"{s1} ({i})", s2])
    if malformed:
        rows.insert(5, ["1", "1000", "1001", "a row whose second sentence is missing"])
    text = _tsv(rows)
    _write(tmp_path / "glue_mrpc" / "train.tsv", "\ufeff" + text)  # GLUE's MRPC starts with a BOM
    dev = [_MRPC_HEADER] + [
        ["1", "1089874", "1089925", _PAIRS[0][0], _PAIRS[0][1]],
        ["0", "3019446", "3019327", _PAIRS[1][0], _PAIRS[1][1]],
    ]
    _write(tmp_path / "glue_mrpc" / "dev.tsv", _tsv(dev))
    return tmp_path


def test_mrpc_canonical_format_with_malformed_row(tmp_path: Path) -> None:
    _mrpc(tmp_path)
    task = load_text_task("glue_mrpc", tmp_path, seed=0)
    assert task.skipped_rows == 1
    assert task.label_names == ["0", "1"]
    assert len(task.train) + len(task.valid) == 18 and len(task.valid) == 2
    assert [e.label for e in task.test] == [1, 0]
    assert task.test[0].text == _PAIRS[0][0] and task.test[0].text_pair == _PAIRS[0][1]
    assert all(e.text_pair for e in task.train)
    assert task.metric == "f1"
    assert all("second sentence is missing" not in e.text for e in task.train + task.valid)
    assert task.unlabeled[0] == f"{task.train[0].text} {task.train[0].text_pair}"


def test_cola_headerless(tmp_path: Path) -> None:
    train = [
        [
            "gj04",
            "1",
            "",
            "Our friends won't buy this analysis, let alone the next one we propose.",
        ],
        ["gj04", "1", "", "One more pseudo generalization and I'm giving up."],
        ["gj04", "0", "*", "They drank the pub."],
        ["gj04", "1", "", "The professor talked us into a stupor."],
        ["gj04", "0", "*", "The more we study verbs, the crazier they get."],
    ] * 4
    dev = [
        ["gj04", "1", "", "The sailors rode the breeze clear of the rocks."],
        ["gj04", "0", "*", "The sailors rode the breeze clear of the rocks the."],
    ]
    _write(tmp_path / "glue_cola" / "train.tsv", _tsv(train))
    _write(tmp_path / "glue_cola" / "dev.tsv", _tsv(dev))
    task = load_text_task("glue_cola", tmp_path, seed=3)
    # No header: the first row is data, not column names.
    assert len(task.train) + len(task.valid) == 20
    assert task.skipped_rows == 0
    assert task.label_names == ["0", "1"] and task.metric == "mcc"
    assert [e.label for e in task.test] == [1, 0]
    assert task.test[1].text == dev[1][3] and task.test[1].text_pair is None
    assert Counter(e.label for e in task.train + task.valid) == {1: 12, 0: 8}


def test_tapt_chemprot_and_sciie(tmp_path: Path) -> None:
    chem = [
        {
            "text": "<< Tamoxifen >> is a selective antagonist of [[ estrogen receptor ]] .",
            "label": "ANTAGONIST",
            "metadata": [1],
        },
        {
            "text": "<< Aspirin >> irreversibly inhibits [[ COX-1 ]] .",
            "label": "INHIBITOR",
            "metadata": [2],
        },
        {
            "text": "<< Insulin >> up-regulates [[ GLUT4 ]] expression .",
            "label": "UPREGULATOR",
            "metadata": [3],
        },
    ]
    for split, records in (("train", chem * 3), ("dev", chem[:2]), ("test", chem[1:])):
        _write(tmp_path / "tapt_chemprot" / f"{split}.jsonl", _jsonl(records))
    task = load_text_task("tapt_chemprot", tmp_path)
    assert task.label_names == ["ANTAGONIST", "INHIBITOR", "UPREGULATOR"]
    assert (len(task.train), len(task.valid), len(task.test)) == (9, 2, 2)
    assert [e.label for e in task.valid] == [0, 1] and [e.label for e in task.test] == [1, 2]
    # No domain.1xTAPT.txt and no train.txt: the train texts are the TAPT corpus.
    assert task.unlabeled == [e.text for e in task.train]

    sci = [
        {"text": "We use [[ CRFs ]] for << named entity recognition >> .", "label": "USED-FOR"},
        {"text": "[[ BLEU ]] is a << metric >> .", "label": "HYPONYM-OF"},
    ]
    folder = tmp_path / "tapt_sciie"
    _write(folder / "train.jsonl", _jsonl(sci * 2) + '{"text": "truncated record\n')
    _write(folder / "dev.jsonl", _jsonl(sci))
    _write(folder / "test.jsonl", _jsonl(sci[::-1]))
    _write(folder / "train.txt", "First unlabeled sentence .\n\n  Second one .  \n")
    task = load_text_task("tapt_sciie", tmp_path)
    assert task.skipped_rows == 1 and len(task.train) == 4
    assert task.label_names == ["HYPONYM-OF", "USED-FOR"]
    assert [e.label for e in task.test] == [0, 1]
    assert task.unlabeled == ["First unlabeled sentence .", "Second one ."]


# ------------------------------------------------------------------------------------------
# Bad input


def _rte(tmp_path: Path, train_header: list[str] | None = None, dev_rows: int = 2) -> None:
    header = ["index", "sentence1", "sentence2", "label"]
    labels = ["entailment", "not_entailment"]
    train = [train_header or header] + [
        [str(i), f"Premise number {i} is here.", f"Hypothesis {i}.", labels[i % 2]][
            : len(train_header or header)
        ]
        for i in range(18)
    ]
    dev = [header] + [
        [str(i), f"Dev premise {i}.", f"Dev hypothesis {i}.", labels[i % 2]]
        for i in range(dev_rows)
    ]
    _write(tmp_path / "glue_rte" / "train.tsv", _tsv(train))
    _write(tmp_path / "glue_rte" / "dev.tsv", _tsv(dev))


def test_small_rte_roundtrip(tmp_path: Path) -> None:
    _rte(tmp_path)
    task = load_text_task("glue_rte", tmp_path)
    assert (len(task.train), len(task.valid), len(task.test)) == (16, 2, 2)


def test_missing_column_is_named(tmp_path: Path) -> None:
    _rte(tmp_path, train_header=["index", "sentence1", "sentence2"])
    with pytest.raises(DataError, match="'label'") as info:
        load_text_task("glue_rte", tmp_path)
    assert "sentence1" in str(info.value) and "train.tsv" in str(info.value)


def test_missing_jsonl_field_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "tapt_sciie"
    _write(folder / "train.jsonl", _jsonl([{"text": "a", "tag": "X"}]))
    _write(folder / "dev.jsonl", _jsonl([{"text": "a", "label": "X"}]))
    _write(folder / "test.jsonl", _jsonl([{"text": "a", "label": "X"}]))
    with pytest.raises(DataError, match="'label'.*'tag'"):
        load_text_task("tapt_sciie", tmp_path)


def test_header_only_dev_names_the_split(tmp_path: Path) -> None:
    _rte(tmp_path, dev_rows=0)
    with pytest.raises(DataError, match="test split") as info:
        load_text_task("glue_rte", tmp_path)
    assert "dev.tsv" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    _rte(tmp_path)
    _write(tmp_path / "glue_rte" / "train.tsv", "")
    with pytest.raises(DataError, match="empty"):
        load_text_task("glue_rte", tmp_path)


def test_dev_label_unseen_in_train(tmp_path: Path) -> None:
    _rte(tmp_path)
    dev = tmp_path / "glue_rte" / "dev.tsv"
    dev.write_text(dev.read_text() + "9\tA premise.\tA hypothesis.\tcontradiction\n")
    with pytest.raises(DataError, match="'contradiction'"):
        load_text_task("glue_rte", tmp_path)


def test_unknown_and_non_text_keys(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'glue_nope'"):
        load_text_task("glue_nope", tmp_path)
    with pytest.raises(DataError, match="not a text task"):
        load_text_task("bbbp", tmp_path)


def test_missing_required_file(tmp_path: Path) -> None:
    (tmp_path / "glue_rte").mkdir()
    with pytest.raises(DataError, match="train.tsv"):
        load_text_task("glue_rte", tmp_path)
