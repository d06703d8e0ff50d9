"""Train/valid/test splits for molecules: scaffold (deterministic), random, random scaffold.

The scaffold split follows Hu et al. 2020 and the TapWeight paper: Bemis-Murcko scaffolds (with
chirality), scaffold groups sorted largest first (ties: the group whose first index is larger
first, as in Hu et al.'s code), filled into train until 80 %, then validation until 90 %, the
rest to test. Structurally novel molecules land in test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from tapweight.errors import ConfigError

__all__ = ["Split", "SplitKind", "scaffold_split", "random_split", "random_scaffold_split", "split"]

SplitKind = Literal["scaffold", "random", "random_scaffold"]


class Split(NamedTuple):
    """Index lists into the dataset."""

    train: list[int]
    valid: list[int]
    test: list[int]


def _check_fractions(frac_train: float, frac_valid: float) -> None:
    if not (0 < frac_train < 1 and 0 <= frac_valid < 1 and frac_train + frac_valid < 1):
        raise ConfigError(
            f"split fractions train={frac_train}, valid={frac_valid} must be in (0, 1) and "
            "leave room for a test split"
        )


def _scaffold_groups(smiles: Sequence[str]) -> list[list[int]]:
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    groups: dict[str, list[int]] = defaultdict(list)
    for index, smi in enumerate(smiles):
        mol = Chem.MolFromSmiles(smi)
        scaffold = (
            MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True) if mol else ""
        )
        groups[scaffold].append(index)
    return list(groups.values())


def _fill(groups: list[list[int]], n: int, frac_train: float, frac_valid: float) -> Split:
    train_cut, valid_cut = frac_train * n, (frac_train + frac_valid) * n
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in groups:
        if len(train) + len(group) <= train_cut:
            train += group
        elif len(train) + len(valid) + len(group) <= valid_cut:
            valid += group
        else:
            test += group
    return Split(sorted(train), sorted(valid), sorted(test))


def scaffold_split(
    smiles: Sequence[str], frac_train: float = 0.8, frac_valid: float = 0.1
) -> Split:
    """Deterministic Bemis-Murcko scaffold split (largest scaffold groups to train)."""
    _check_fractions(frac_train, frac_valid)
    groups = sorted(_scaffold_groups(smiles), key=lambda g: (len(g), g[0]), reverse=True)
    return _fill(groups, len(smiles), frac_train, frac_valid)


def random_scaffold_split(
    smiles: Sequence[str], seed: int, frac_train: float = 0.8, frac_valid: float = 0.1
) -> Split:
    """Scaffold groups in a seeded random order (Hu et al.'s random scaffold split).

    As in Hu et al., groups fill validation and test up to their quotas first; the rest trains.
    """
    _check_fractions(frac_train, frac_valid)
    groups = _scaffold_groups(smiles)
    n_valid = int(np.floor(frac_valid * len(smiles)))
    n_test = int(np.floor((1 - frac_train - frac_valid) * len(smiles)))
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for i in np.random.default_rng(seed).permutation(len(groups)):
        group = groups[i]
        if len(valid) + len(group) <= n_valid:
            valid += group
        elif len(test) + len(group) <= n_test:
            test += group
        else:
            train += group
    return Split(sorted(train), sorted(valid), sorted(test))


def random_split(n: int, seed: int, frac_train: float = 0.8, frac_valid: float = 0.1) -> Split:
    """Seeded uniformly random split of ``n`` items."""
    _check_fractions(frac_train, frac_valid)
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_train, n_valid = int(round(frac_train * n)), int(round(frac_valid * n))
    return Split(
        sorted(order[:n_train]),
        sorted(order[n_train : n_train + n_valid]),
        sorted(order[n_train + n_valid :]),
    )


def split(
    kind: SplitKind,
    smiles: Sequence[str],
    seed: int = 0,
    frac_train: float = 0.8,
    frac_valid: float = 0.1,
) -> Split:
    """Dispatch on the split kind by name (used by configs and the CLI)."""
    if kind == "scaffold":
        return scaffold_split(smiles, frac_train, frac_valid)
    if kind == "random_scaffold":
        return random_scaffold_split(smiles, seed, frac_train, frac_valid)
    if kind == "random":
        return random_split(len(smiles), seed, frac_train, frac_valid)
    raise ConfigError(f"unknown split {kind!r}; choose scaffold, random or random_scaffold")
