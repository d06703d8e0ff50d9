"""The user's own molecules or texts, read and checked the way the registry's datasets are.

One reader for a spec check, ``tapweight data show``, an upload to the service and a trial's
load, so each sees the same problems: a column that is not there (the columns that are, listed),
a label column with no labels, labels that are not numbers (regression) or not 0/1
(molecule classification), more classes than the rows allow (text), unparsable SMILES (skipped
and counted; refused when over half), duplicated SMILES (reported), too few rows for a split.
Each is one line naming the file, the column and the row; what is only worth knowing comes back
as a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tapweight.data.molecules import MISSING_CELLS, MoleculeTable
from tapweight.data.splits import SplitKind, random_split, split
from tapweight.data.text_tasks import TextExample, TextTask
from tapweight.data.user_files import read_table, require_columns
from tapweight.data.user_specs import MoleculeFileSpec, TextFileSpec, split_column
from tapweight.errors import DataError

__all__ = [
    "MIN_SPLIT_ROWS",
    "MIN_ROWS_PER_CLASS",
    "Inspection",
    "inspect_user_dataset",
    "load_molecule_table",
    "load_user_text_task",
    "check_split_sizes",
]

log = logging.getLogger("tapweight.data")

MIN_SPLIT_ROWS = 3
"""Fewest rows a train, validation or test split of a user dataset may get."""
MIN_ROWS_PER_CLASS = 2
"""A text classification file needs at least this many labeled rows per class."""
_SPLIT_VALUES = {
    "train": "train", "training": "train",
    "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid",
    "test": "test", "testing": "test",
}  # fmt: skip
DataDir = str | os.PathLike[str] | None


@dataclass
class Inspection:
    """What a loader sees in a user file: a summary, and what is only worth a warning."""

    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def log(self) -> None:
        for warning in self.warnings:
            log.warning("%s", warning)


def check_split_sizes(source: str, split_name: str, sizes: dict[str, int]) -> None:
    """Refuse a split that leaves a part with fewer than :data:`MIN_SPLIT_ROWS` rows."""
    short = [name for name, size in sizes.items() if size < MIN_SPLIT_ROWS]
    if short:
        got = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise DataError(
            f"{source}: the {split_name} split gives {got} rows; each split needs at least "
            f"{MIN_SPLIT_ROWS} (too few: {', '.join(short)}); add rows or choose another split"
        )


def _assigned(frame: pd.DataFrame, column: str, source: str) -> list[str]:
    """Each row's split from a ``column:<name>`` split column."""
    values = frame[column].str.strip().str.lower()
    for row, value in enumerate(values):
        if value not in _SPLIT_VALUES:
            raise DataError(
                f"{source}: split column {column!r} row {row + 2} holds "
                f"{frame[column].iloc[row]!r}; use train, valid or test"
            )
    return [_SPLIT_VALUES[v] for v in values]


def _blank(raw: pd.Series) -> pd.Series:
    return raw.str.strip().str.lower().isin(MISSING_CELLS)


def _first_row(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _molecule_labels(frame: pd.DataFrame, spec: MoleculeFileSpec, source: str) -> np.ndarray:
    labels = np.empty((len(frame), len(spec.label_columns)), dtype=np.float64)
    for j, column in enumerate(spec.label_columns):
        raw = frame[column]
        blank = _blank(raw)
        if blank.all():
            raise DataError(
                f"{source}: label column {column!r} has no labels (all {len(frame)} rows are "
                "empty); choose another column"
            )
        numeric = pd.to_numeric(raw.where(~blank), errors="coerce")
        if spec.task_type == "regression":
            bad = numeric.isna() & ~blank
            rule = "regression labels must be numbers (empty: missing)"
        else:
            bad = ~blank & ~numeric.isin([0.0, 1.0])
            rule = (
                "classification labels must be 0 or 1 (empty: missing); give one 0/1 column "
                "per class, or task_type: regression"
            )
        if bad.any():
            row = _first_row(bad)
            raise DataError(
                f"{source}: column {column!r} row {row + 2} holds {raw.iloc[row]!r}; {rule}"
            )
        labels[:, j] = numeric.to_numpy(dtype=np.float64)
    return labels


def load_molecule_table(spec: MoleculeFileSpec, data_dir: DataDir = None) -> MoleculeTable:
    """The file's rows as the molecule loaders take them (columns and labels checked)."""
    path = spec.located(data_dir)
    frame = read_table(path)
    source = path.name
    wanted = {"smiles_column": spec.smiles_column}
    wanted |= {f"label_columns[{i}]": c for i, c in enumerate(spec.label_columns)}
    if column := split_column(spec.split):
        wanted["split"] = column
    require_columns(frame, wanted, source)
    return MoleculeTable(
        spec.name,
        [s.strip() for s in frame[spec.smiles_column].tolist()],
        _molecule_labels(frame, spec, source),
        list(spec.label_columns),
        spec.registry_task_type,
        assigned=_assigned(frame, column, source) if column else None,
        min_split_rows=MIN_SPLIT_ROWS,
        source=source,
    )


def _inspect_molecules(spec: MoleculeFileSpec, data_dir: DataDir, seed: int) -> Inspection:
    from rdkit import Chem, RDLogger

    table = load_molecule_table(spec, data_dir)
    source, rows = table.source, len(table.smiles)
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    invalid: list[int] = []
    valid: list[int] = []
    seen: dict[str, int] = {}
    duplicates: list[tuple[int, int]] = []
    for row, smiles in enumerate(table.smiles):
        mol = Chem.MolFromSmiles(smiles) if smiles else None
        if mol is None:
            invalid.append(row)
            continue
        valid.append(row)
        canonical = Chem.MolToSmiles(mol)
        if canonical in seen:
            duplicates.append((seen[canonical], row))
        else:
            seen[canonical] = row
    warnings = []
    if invalid:
        first = invalid[0]
        what = (
            f"{len(invalid)} of {rows} SMILES in column {spec.smiles_column!r} do not parse "
            f"(first: row {first + 2} {table.smiles[first]!r})"
        )
        if 2 * len(invalid) > rows:
            raise DataError(
                f"{source}: {what}; over half are invalid, so the file is refused: is "
                f"{spec.smiles_column!r} the SMILES column?"
            )
        warnings.append(f"{source}: {what}; those rows are skipped")
    if duplicates:
        a, b = duplicates[0]
        warnings.append(
            f"{source}: {len(duplicates)} duplicated SMILES in column {spec.smiles_column!r} "
            f"(first: rows {a + 2} and {b + 2}, {table.smiles[b]!r}); they are kept"
        )
    if table.assigned is not None:
        kept = [table.assigned[r] for r in valid]
        sizes = {name: kept.count(name) for name in ("train", "valid", "test")}
    else:
        kind: SplitKind = spec.split  # type: ignore[assignment]  # checked by the spec
        parts = split(kind, [table.smiles[r] for r in valid], seed)
        sizes = {name: len(idx) for name, idx in parts._asdict().items()}
    check_split_sizes(source, spec.split, sizes)
    labels = table.labels[valid]
    coverage = {c: float((~np.isnan(labels[:, j])).mean()) for j, c in enumerate(table.task_names)}
    summary = {
        "name": spec.name,
        "domain": "molecule",
        "rows": rows,
        "molecules": len(valid),
        "invalid_smiles": len(invalid),
        "duplicated_smiles": len(duplicates),
        "tasks": len(table.task_names),
        "task_type": spec.task_type,
        "label_coverage": coverage,
        "split": sizes,
    }
    return Inspection(summary, warnings)


@dataclass
class _TextRows:
    texts: list[str]
    pairs: list[str | None]
    labels: list[int | float]
    label_names: list[str]
    assigned: list[str] | None
    rows: int
    skipped: int
    source: str


def _text_rows(spec: TextFileSpec, data_dir: DataDir) -> tuple[_TextRows, list[str]]:
    path = spec.located(data_dir)
    frame = read_table(path)
    source = path.name
    wanted = {"text_column": spec.text_column, "label_column": spec.label_column}
    if spec.text_pair_column:
        wanted["text_pair_column"] = spec.text_pair_column
    if column := split_column(spec.split):
        wanted["split"] = column
    require_columns(frame, wanted, source)
    raw = frame[spec.label_column].str.strip()
    blank = _blank(raw)
    if blank.all():
        raise DataError(
            f"{source}: label column {spec.label_column!r} has no labels (all {len(frame)} rows "
            "are empty); choose another column"
        )
    texts = frame[spec.text_column].str.strip()
    keep = ~blank & (texts != "")
    warnings = []
    if (~keep).any():
        warnings.append(
            f"{source}: {int((~keep).sum())} of {len(frame)} rows have no text or no label in "
            f"{spec.text_column!r}/{spec.label_column!r} (first: row {_first_row(~keep) + 2}); "
            "they are skipped"
        )
    labels: list[int | float]
    if spec.task_type == "regression":
        numeric = pd.to_numeric(raw.where(keep), errors="coerce")
        bad = keep & (numeric.isna() | ~np.isfinite(numeric.fillna(0.0)))
        if bad.any():
            row = _first_row(bad)
            raise DataError(
                f"{source}: column {spec.label_column!r} row {row + 2} holds {raw.iloc[row]!r}; "
                "regression labels must be numbers"
            )
        label_names: list[str] = []
        labels = [float(v) for v in numeric[keep]]
    else:
        kept = raw[keep]
        label_names = sorted(set(kept))
        count = int(keep.sum())
        if len(label_names) < 2:
            raise DataError(
                f"{source}: label column {spec.label_column!r} has one class "
                f"({label_names[0]!r}); classification needs at least two"
            )
        if len(label_names) * MIN_ROWS_PER_CLASS > count:
            raise DataError(
                f"{source}: label column {spec.label_column!r} has {len(label_names)} classes in "
                f"{count} labeled rows; a classifier needs at least {MIN_ROWS_PER_CLASS} rows per "
                "class (is it the label column, or a regression target: task_type: regression?)"
            )
        index = {name: i for i, name in enumerate(label_names)}
        labels = [index[v] for v in kept]
    pairs: list[str | None] = (
        [p.strip() for p in frame[spec.text_pair_column][keep]]
        if spec.text_pair_column
        else [None] * int(keep.sum())
    )
    assigned = None
    if column:
        every = _assigned(frame, column, source)
        assigned = [a for a, k in zip(every, keep, strict=True) if k]
    found = _TextRows(
        list(texts[keep]), pairs, labels, label_names, assigned, len(frame),
        int((~keep).sum()), source,
    )  # fmt: skip
    return found, warnings


def _text_split(rows: _TextRows, seed: int) -> dict[str, list[int]]:
    if rows.assigned is not None:
        return {
            n: [i for i, a in enumerate(rows.assigned) if a == n]
            for n in ("train", "valid", "test")
        }
    parts = random_split(len(rows.texts), seed)
    return parts._asdict()


def _inspect_text(spec: TextFileSpec, data_dir: DataDir, seed: int) -> Inspection:
    rows, warnings = _text_rows(spec, data_dir)
    sizes = {name: len(idx) for name, idx in _text_split(rows, seed).items()}
    check_split_sizes(rows.source, spec.split, sizes)
    summary = {
        "name": spec.name,
        "domain": "text",
        "rows": rows.rows,
        "labeled_rows": len(rows.texts),
        "skipped_rows": rows.skipped,
        "task_type": spec.task_type,
        "classes": len(rows.label_names) if spec.task_type == "classification" else None,
        "label_coverage": len(rows.texts) / rows.rows,
        "split": sizes,
    }
    return Inspection(summary, warnings)


def inspect_user_dataset(
    spec: MoleculeFileSpec | TextFileSpec, data_dir: DataDir = None, seed: int = 0
) -> Inspection:
    """Read and check a user dataset without featurizing or tokenizing it.

    Raises:
        DataError: one line naming the file, column and row of the first problem.
    """
    if isinstance(spec, MoleculeFileSpec):
        return _inspect_molecules(spec, data_dir, seed)
    return _inspect_text(spec, data_dir, seed)


def load_user_text_task(spec: TextFileSpec, data_dir: DataDir = None, seed: int = 0) -> TextTask:
    """A :class:`TextTask` from a user file (checked as :func:`inspect_user_dataset` does)."""
    rows, warnings = _text_rows(spec, data_dir)
    parts = _text_split(rows, seed)
    check_split_sizes(rows.source, spec.split, {k: len(v) for k, v in parts.items()})
    for warning in warnings:
        log.warning("%s", warning)
    examples = [
        TextExample(t, p, y) for t, p, y in zip(rows.texts, rows.pairs, rows.labels, strict=True)
    ]
    chosen = {name: [examples[i] for i in idx] for name, idx in parts.items()}
    classification = spec.task_type == "classification"
    return TextTask(
        key=spec.name,
        task_type="multiclass" if classification else "regression",
        metric="macro_f1" if classification else "rmse",
        label_names=rows.label_names,
        train=chosen["train"],
        valid=chosen["valid"],
        test=chosen["test"],
        unlabeled=[" ".join(p for p in (e.text, e.text_pair) if p) for e in chosen["train"]],
        skipped_rows=rows.skipped,
    )
