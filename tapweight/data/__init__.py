"""Datasets of both domains, their splits and where their files come from."""

from __future__ import annotations

from tapweight.data.featurize import HuFeaturizer
from tapweight.data.molecules import (
    MoleculeDataset,
    MoleculeTable,
    read_molecule_table,
    read_smiles_file,
)
from tapweight.data.registry import DATASETS, DatasetInfo, dataset_keys, get_dataset_info
from tapweight.data.splits import Split, random_scaffold_split, random_split, scaffold_split

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "HuFeaturizer",
    "MoleculeDataset",
    "MoleculeTable",
    "Split",
    "dataset_keys",
    "get_dataset_info",
    "random_scaffold_split",
    "random_split",
    "read_molecule_table",
    "read_smiles_file",
    "scaffold_split",
]
