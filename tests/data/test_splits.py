"""Scaffold, random and random-scaffold splits, on hand-made lists and on real BBBP."""

from __future__ import annotations

import pytest

from tapweight.data.molecules import MoleculeDataset
from tapweight.data.splits import (
    Split,
    random_scaffold_split,
    random_split,
    scaffold_split,
    split,
)
from tapweight.errors import ConfigError


def _scaffold(smiles: str) -> str:
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True) if mol else ""


def _assert_partition(parts: Split, n: int) -> None:
    train, valid, test = map(set, parts)
    assert not train & valid and not train & test and not valid & test
    assert train | valid | test == set(range(n))
    assert sum(map(len, parts)) == n
    for part in parts:
        assert part == sorted(part)


# ------------------------------------------------------------------------------ hand-made

# 8 benzene derivatives (one scaffold), then a pyridine at index 3 and a cyclohexane at 7:
# the two singleton groups tie on size, and Hu et al. order ties by first index, larger first.
HANDMADE = [
    "Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "c1ccncc1", "Clc1ccccc1",
    "Fc1ccccc1", "Brc1ccccc1", "C1CCCCC1", "CCc1ccccc1", "COc1ccccc1",
]  # fmt: skip


def test_scaffold_split_largest_groups_to_train_and_hu_tie_break():
    parts = scaffold_split(HANDMADE)
    assert parts.train == [0, 1, 2, 4, 5, 6, 8, 9]
    assert parts.valid == [7]
    assert parts.test == [3]


def test_scaffold_split_puts_unparseable_smiles_in_one_group():
    smiles = ["CCO", "c1ccccc1C", "not-a-smiles", "c1ccccc1N", "CCN", "C1CC"] * 2
    parts = scaffold_split(smiles, 0.5, 0.25)
    _assert_partition(parts, len(smiles))


def test_fractions_are_validated():
    for train, valid in [(0.0, 0.1), (1.0, 0.0), (0.8, 0.2), (0.9, 0.2), (0.8, -0.1)]:
        with pytest.raises(ConfigError, match="split fractions"):
            scaffold_split(HANDMADE, train, valid)
        with pytest.raises(ConfigError):
            random_split(10, 0, train, valid)


def test_unknown_split_kind():
    with pytest.raises(ConfigError, match="unknown split 'stratified'"):
        split("stratified", HANDMADE)  # type: ignore[arg-type]


def test_random_split_sizes_and_seeds():
    parts = random_split(1000, seed=3)
    assert list(map(len, parts)) == [800, 100, 100]
    _assert_partition(parts, 1000)
    assert random_split(1000, seed=3) == parts
    assert random_split(1000, seed=4) != parts


def test_dispatch_matches_the_functions():
    assert split("scaffold", HANDMADE) == scaffold_split(HANDMADE)
    assert split("random", HANDMADE, seed=2) == random_split(len(HANDMADE), 2)
    assert split("random_scaffold", HANDMADE, seed=2) == random_scaffold_split(HANDMADE, 2)


# --------------------------------------------------------------------------------- real BBBP


@pytest.fixture(scope="module")
def bbbp_smiles(data_dir) -> list[str]:
    return MoleculeDataset("bbbp", data_dir=data_dir).smiles


@pytest.mark.dataset
def test_bbbp_scaffold_split_matches_hu_et_al(bbbp_smiles):
    assert len(bbbp_smiles) == 2039
    parts = scaffold_split(bbbp_smiles)
    assert list(map(len, parts)) == [1631, 204, 204]
    _assert_partition(parts, 2039)
    assert scaffold_split(bbbp_smiles) == parts  # deterministic
    scaffolds = [_scaffold(s) for s in bbbp_smiles]
    owner = {}
    for name, part in parts._asdict().items():
        for i in part:
            assert owner.setdefault(scaffolds[i], name) == name, "a scaffold spans two splits"
    # the largest scaffold group (benzene) is in train
    biggest = max(set(scaffolds), key=scaffolds.count)
    assert owner[biggest] == "train"


@pytest.mark.dataset
def test_bbbp_random_split_is_seeded(bbbp_smiles):
    n = len(bbbp_smiles)
    first = split("random", bbbp_smiles, seed=11)
    _assert_partition(first, n)
    n_train, n_valid = round(0.8 * n), round(0.1 * n)
    assert list(map(len, first)) == [n_train, n_valid, n - n_train - n_valid]
    assert split("random", bbbp_smiles, seed=11) == first
    assert split("random", bbbp_smiles, seed=12) != first


@pytest.mark.dataset
def test_bbbp_random_scaffold_split_keeps_groups_together(bbbp_smiles):
    n = len(bbbp_smiles)
    scaffolds = [_scaffold(s) for s in bbbp_smiles]
    first = random_scaffold_split(bbbp_smiles, seed=0)
    _assert_partition(first, n)
    assert all(first)
    owner = {}
    for name, part in first._asdict().items():
        for i in part:
            assert owner.setdefault(scaffolds[i], name) == name, "a scaffold spans two splits"
    assert random_scaffold_split(bbbp_smiles, seed=0) == first
    other = random_scaffold_split(bbbp_smiles, seed=1)
    assert other != first
    assert other != scaffold_split(bbbp_smiles)
    # Hu et al. fill validation and test up to their quotas first; train takes the rest
    assert len(first.valid) <= 0.1 * n and len(first.test) <= 0.1 * n
    assert len(first.train) >= 0.8 * n
