"""Text datasets: GLUE TSVs, Don't-Stop-Pretraining (TAPT) JSONL splits and AG News CSVs.

Every text dataset becomes a :class:`TextTask`: labeled train/valid/test examples plus the
unlabeled texts used for task-adaptive continued pretraining. Splits follow the TapWeight paper:
for GLUE the dev set is the test set and a validation set is split off train 8:1 with a seed; the
TAPT tasks keep their published train/dev/test files. Malformed rows are skipped, counted in
``skipped_rows`` and logged, never dropped silently.

Tokenizing them for a model is :mod:`tapweight.data.tokenized`'s job.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tapweight.data.paths import dataset_file, open_text
from tapweight.data.registry import DatasetInfo, get_dataset_info
from tapweight.errors import DataError

__all__ = ["TextExample", "TextTask", "load_text_task"]

log = logging.getLogger("tapweight.data")

AGNEWS_DEFAULT_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


@dataclass(frozen=True)
class TextExample:
    """One labeled example; ``label`` is a class index, or a float score for regression."""

    text: str
    text_pair: str | None
    label: int | float


@dataclass
class TextTask:
    """A text task ready for fine-tuning (train/valid/test) and continued pretraining."""

    key: str
    task_type: str
    metric: str
    label_names: list[str]
    train: list[TextExample]
    valid: list[TextExample]
    test: list[TextExample]
    unlabeled: list[str] = field(default_factory=list)
    skipped_rows: int = 0

    @property
    def num_classes(self) -> int:
        """Output size of a classification head (1 for regression)."""
        return len(self.label_names) if self.task_type != "regression" else 1

    def summary(self) -> dict[str, Any]:
        """Sizes and counts for logs and reports."""
        return {
            "key": self.key,
            "task_type": self.task_type,
            "metric": self.metric,
            "classes": len(self.label_names),
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "unlabeled": len(self.unlabeled),
            "skipped_rows": self.skipped_rows,
        }


# --------------------------------------------------------------------------------------------
# Reading files


@dataclass(frozen=True)
class _GlueSpec:
    """Where a GLUE file keeps its text, pair and label, by header name or by position."""

    text: str
    pair: str | None
    label: str
    columns: tuple[str, ...] | None = None  # set for headerless files (CoLA)


_GLUE_SPECS: dict[str, _GlueSpec] = {
    "glue_rte": _GlueSpec("sentence1", "sentence2", "label"),
    "glue_mrpc": _GlueSpec("#1 String", "#2 String", "Quality"),
    "glue_cola": _GlueSpec(
        "sentence", None, "label", columns=("source", "label", "original_label", "sentence")
    ),
    "glue_stsb": _GlueSpec("sentence1", "sentence2", "score"),
    "glue_sst2": _GlueSpec("sentence", None, "label"),
}


def _read_tsv(
    path: Path, spec: _GlueSpec, split: str
) -> tuple[list[tuple[str, str | None, str]], int]:
    """Rows of (text, pair, raw label) and the number of rows skipped for a wrong field count."""
    with open_text(path) as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [row for row in rows if row and any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(
            f"{path}: the file is empty (no header, no rows); the {split} split needs it"
        )
    if rows[0]:
        rows[0][0] = rows[0][0].lstrip("\ufeff")
    if spec.columns is None:
        header, body, first_line = [c.strip() for c in rows[0]], rows[1:], 2
    else:
        header, body, first_line = list(spec.columns), rows, 1
    wanted = [c for c in (spec.text, spec.pair, spec.label) if c is not None]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; columns found: "
            f"{', '.join(map(repr, header))}"
        )
    index = {name: header.index(name) for name in wanted}
    out: list[tuple[str, str | None, str]] = []
    skipped = 0
    for line, row in enumerate(body, start=first_line):
        if len(row) != len(header):
            skipped += 1
            log.warning(
                "%s: row %d has %d fields, expected %d; skipped", path, line, len(row), len(header)
            )
            continue
        pair = row[index[spec.pair]] if spec.pair is not None else None
        out.append((row[index[spec.text]], pair, row[index[spec.label]].strip()))
    if not out:
        raise DataError(
            f"{path}: the {split} split has no rows"
            + (f" ({skipped} malformed rows skipped)" if skipped else "")
            + "; check that the file is complete"
        )
    return out, skipped


def _read_jsonl(path: Path, split: str) -> tuple[list[tuple[str, str]], int]:
    """(text, raw label) pairs of a TAPT JSONL file and the number of unparseable lines skipped."""
    out: list[tuple[str, str]] = []
    skipped = 0
    seen_any = False
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            seen_any = True
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                skipped += 1
                log.warning("%s: line %d is not a JSON object; skipped", path, line_no)
                continue
            missing = [name for name in ("text", "label") if name not in record]
            if missing:
                raise DataError(
                    f"{path}: line {line_no} has no field(s) {', '.join(map(repr, missing))}; "
                    f"fields found: {', '.join(map(repr, record))}"
                )
            out.append((str(record["text"]), str(record["label"])))
    if not seen_any:
        raise DataError(f"{path}: the file has no rows; the {split} split needs it")
    if not out:
        raise DataError(f"{path}: the {split} split has no readable rows ({skipped} skipped)")
    return out, skipped


def _read_lines(path: Path) -> list[str]:
    with open_text(path) as handle:
        return [line.strip() for line in handle if line.strip()]


# --------------------------------------------------------------------------------------------
# Splits and labels


def _split_off(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (rest, held-out) with ``round(fraction * n)`` held out.

    Both lists keep file order, so a split is the same whatever the caller does with them.
    """
    held = int(round(n * fraction))
    if n >= 2:
        held = min(max(held, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def _label_index(raw: Sequence[str], label_names: list[str], source: str, split: str) -> list[int]:
    lookup = {name: i for i, name in enumerate(label_names)}
    unseen = sorted(set(raw) - lookup.keys())
    if unseen:
        raise DataError(
            f"{source}: the {split} split has label(s) {', '.join(map(repr, unseen[:5]))} that "
            f"never occur in train (train labels: {', '.join(map(repr, label_names))})"
        )
    return [lookup[r] for r in raw]


def _score(raw: str, source: str, split: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"{source}: the {split} split has score {raw!r}, not a number") from None
    if not np.isfinite(value):
        raise DataError(f"{source}: the {split} split has a non-finite score {raw!r}")
    return value


def _task(
    info: DatasetInfo,
    label_names: list[str],
    splits: dict[str, list[TextExample]],
    skipped_rows: int,
    unlabeled: list[str] | None = None,
) -> TextTask:
    """Build a :class:`TextTask`, refusing empty splits; unlabeled defaults to the train texts."""
    for name, rows in splits.items():
        if not rows:
            raise DataError(
                f"{info.key}: the {name} split is empty; the dataset is too small to split"
            )
    return TextTask(
        key=info.key,
        task_type=info.task_type,
        metric=info.metric,
        label_names=label_names,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        unlabeled=unlabeled or _joined(splits["train"]),
        skipped_rows=skipped_rows,
    )


def _joined(examples: Sequence[TextExample]) -> list[str]:
    texts = (" ".join(p for p in (e.text, e.text_pair) if p) for e in examples)
    return [t.strip() for t in texts if t.strip()]


# --------------------------------------------------------------------------------------------
# Loaders


def _load_glue(info: DatasetInfo, data_dir: Any, seed: int) -> TextTask:
    spec = _GLUE_SPECS[info.key]
    train_path = dataset_file(info.key, "train.tsv", data_dir)
    dev_path = dataset_file(info.key, "dev.tsv", data_dir)
    assert train_path is not None and dev_path is not None  # required files raise when missing
    train_rows, skipped_train = _read_tsv(train_path, spec, "train")
    dev_rows, skipped_dev = _read_tsv(dev_path, spec, "test")

    if info.task_type == "regression":
        label_names: list[str] = []
        train_labels: list[int | float] = [
            _score(r[2], str(train_path), "train") for r in train_rows
        ]
        dev_labels: list[int | float] = [_score(r[2], str(dev_path), "test") for r in dev_rows]
    else:
        label_names = sorted({r[2] for r in train_rows})
        train_labels = list(
            _label_index([r[2] for r in train_rows], label_names, str(train_path), "train")
        )
        dev_labels = list(
            _label_index([r[2] for r in dev_rows], label_names, str(dev_path), "test")
        )

    examples = [TextExample(t, p, y) for (t, p, _), y in zip(train_rows, train_labels, strict=True)]
    test = [TextExample(t, p, y) for (t, p, _), y in zip(dev_rows, dev_labels, strict=True)]
    train_idx, valid_idx = _split_off(len(examples), 1 / 9, seed)
    train = [examples[i] for i in train_idx]
    valid = [examples[i] for i in valid_idx]
    splits = {"train": train, "valid": valid, "test": test}
    return _task(info, label_names, splits, skipped_train + skipped_dev)


def _load_tapt(info: DatasetInfo, data_dir: Any) -> TextTask:
    splits: dict[str, list[tuple[str, str]]] = {}
    sources: dict[str, str] = {}
    skipped = 0
    for split, name in (("train", "train.jsonl"), ("valid", "dev.jsonl"), ("test", "test.jsonl")):
        path = dataset_file(info.key, name, data_dir)
        assert path is not None
        splits[split], n_skipped = _read_jsonl(path, split)
        sources[split] = str(path)
        skipped += n_skipped
    label_names = sorted({label for _, label in splits["train"]})
    examples = {
        split: [
            TextExample(text, None, y)
            for (text, _), y in zip(
                rows,
                _label_index([r[1] for r in rows], label_names, sources[split], split),
                strict=True,
            )
        ]
        for split, rows in splits.items()
    }
    unlabeled: list[str] = []
    for name in ("domain.1xTAPT.txt", "train.txt"):
        path = dataset_file(info.key, name, data_dir)
        if path is not None:
            unlabeled = _read_lines(path)
            if unlabeled:
                break
            log.warning("%s: no non-empty lines; trying the next unlabeled source", path)
    return _task(info, label_names, examples, skipped, unlabeled)


def _agnews_classes(folder: Path) -> list[str]:
    """Class names from ``classes.txt`` (one per line, or ``1-World, 2-Sports, ...``)."""
    path = folder / "classes.txt"
    if not path.is_file():
        return list(AGNEWS_DEFAULT_CLASSES)
    with open_text(path) as handle:
        raw = handle.read()
    names = [re.sub(r"^\d+\s*[-=:.)]\s*", "", part.strip()) for part in re.split(r"[,\n]", raw)]
    names = [n for n in names if n]
    if len(names) != len(AGNEWS_DEFAULT_CLASSES):
        log.warning(
            "%s: expected %d class names, found %r; using the default names",
            path,
            len(AGNEWS_DEFAULT_CLASSES),
            names,
        )
        return list(AGNEWS_DEFAULT_CLASSES)
    return names


def _read_agnews(path: Path, n_classes: int, split: str) -> tuple[list[TextExample], int]:
    columns = ("Class Index", "Title", "Description")
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty (no header, no rows)")
        header = [c.strip().lstrip("\ufeff") for c in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(map(repr, missing))}; columns found: "
                f"{', '.join(map(repr, header))}"
            )
        index = [header.index(c) for c in columns]
        out: list[TextExample] = []
        skipped = 0
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                skipped += 1
                log.warning(
                    "%s: row %d has %d fields, expected %d; skipped",
                    path,
                    line,
                    len(row),
                    len(header),
                )
                continue
            raw_label, title, description = (row[i].strip() for i in index)
            try:
                label = int(raw_label) - 1
            except ValueError:
                label = -1
            if not 0 <= label < n_classes:
                raise DataError(
                    f"{path}: row {line} has Class Index {raw_label!r}; expected 1..{n_classes}"
                )
            text = f"{title}. {description}" if title and description else title or description
            out.append(TextExample(text, None, label))
    if not out:
        raise DataError(f"{path}: the {split} split has no rows")
    return out, skipped


def _load_agnews(info: DatasetInfo, data_dir: Any, seed: int) -> TextTask:
    test_path = dataset_file(info.key, "test.csv", data_dir)
    assert test_path is not None
    label_names = _agnews_classes(test_path.parent)
    test_all, skipped = _read_agnews(test_path, len(label_names), "test")
    train_path = dataset_file(info.key, "train.csv", data_dir)
    if train_path is not None:
        train_all, skipped_train = _read_agnews(train_path, len(label_names), "train")
        skipped += skipped_train
        train_idx, valid_idx = _split_off(len(train_all), 1 / 9, seed)
        train = [train_all[i] for i in train_idx]
        valid = [train_all[i] for i in valid_idx]
        test = test_all
    else:
        log.warning(
            "agnews: no train.csv found, so train/valid/test are split 8:1:1 (seed %d) from the "
            "%d rows of %s; scores are not comparable with the standard AG News benchmark",
            seed,
            len(test_all),
            test_path,
        )
        rest_idx, test_idx = _split_off(len(test_all), 1 / 10, seed)
        rest = [test_all[i] for i in rest_idx]
        # A second, seed-derived draw splits the remaining 9/10 into 8:1.
        train_idx, valid_idx = _split_off(len(rest), 1 / 9, seed + 1)
        train = [rest[i] for i in train_idx]
        valid = [rest[i] for i in valid_idx]
        test = [test_all[i] for i in test_idx]
    return _task(info, label_names, {"train": train, "valid": valid, "test": test}, skipped)


def load_text_task(
    key: str, data_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> TextTask:
    """Load a registered text dataset with its paper splits and its TAPT corpus.

    ``seed`` only matters where a split is drawn (GLUE and AG News validation sets).

    Raises:
        DataError: unknown or non-text key, missing file or column, empty split, a test/dev
            label never seen in train.
    """
    info = get_dataset_info(key)
    if info.domain != "text" or info.kind != "labeled":
        raise DataError(
            f"dataset {key!r} is a {info.domain} {info.kind} dataset, not a text task; text "
            f"tasks: {', '.join(sorted(_text_keys()))}"
        )
    if key in _GLUE_SPECS:
        task = _load_glue(info, data_dir, seed)
    elif key.startswith("tapt_"):
        task = _load_tapt(info, data_dir)
    elif key == "agnews":
        task = _load_agnews(info, data_dir, seed)
    else:  # a text dataset added to the registry without a reader here
        raise DataError(f"text dataset {key!r} has no reader in tapweight.data.text_tasks")
    if task.skipped_rows:
        log.warning("%s: %d malformed row(s) skipped while reading", key, task.skipped_rows)
    return task


def _text_keys() -> list[str]:
    from tapweight.data.registry import dataset_keys

    return dataset_keys(domain="text", kind="labeled")
