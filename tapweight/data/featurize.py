"""SMILES to PyG graphs with the Hu et al. 2020 featurization.

Node features are ``[atomic number index, chirality tag]`` and edge features
``[bond type, bond direction]``, both integer indices into the embedding tables of the
pretrained GNNs (120 atom types incl. the mask token 119, 3 chirality tags, 6 bond types incl.
the self-loop type 4 and the mask type 5, 3 bond directions), so the shared pretrained state
dicts load unchanged. Optional motif labels (presence of each of RDKit's 85 fragment patterns)
serve the motif-prediction objective.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

__all__ = [
    "HuFeaturizer",
    "NUM_ATOM_TYPES",
    "NUM_CHIRALITY_TAGS",
    "NUM_BOND_TYPES",
    "NUM_BOND_DIRECTIONS",
    "MASK_ATOM_INDEX",
    "SELF_LOOP_BOND_TYPE",
    "MASK_BOND_TYPE",
    "NUM_MOTIFS",
    "UNKNOWN_ATOM_INDEX",
]

NUM_ATOM_TYPES = 120
MASK_ATOM_INDEX = 119
NUM_CHIRALITY_TAGS = 3
NUM_BOND_TYPES = 6
SELF_LOOP_BOND_TYPE = 4
MASK_BOND_TYPE = 5
NUM_BOND_DIRECTIONS = 3


def _rdkit():
    try:
        from rdkit import Chem, RDLogger
    except ImportError as error:  # pragma: no cover - rdkit is a core dependency
        raise ImportError("molecule featurization needs rdkit: pip install rdkit") from error
    RDLogger.DisableLog("rdApp.*")
    return Chem


def _motif_patterns() -> list:
    from rdkit.Chem import Fragments

    # Each Fragments function carries its compiled SMARTS as the `pattern` default argument.
    return [fn.__defaults__[1] for _, fn in Fragments.fns]


NUM_MOTIFS = 85
UNKNOWN_ATOM_INDEX = 118
"""Atomic numbers 1..118 map to 0..117; index 118 (unused by real elements) takes dummy atoms."""


def _atom_index(atomic_num: int) -> int:
    # A dummy/wildcard atom ("*", atomic number 0) would otherwise give index -1.
    return atomic_num - 1 if 1 <= atomic_num <= 118 else UNKNOWN_ATOM_INDEX


class HuFeaturizer:
    """Callable SMILES -> :class:`~torch_geometric.data.Data`, or None if RDKit cannot parse it.

    Chirality tags and bond directions outside Hu et al.'s vocabularies (e.g. ``CHI_OTHER``,
    ``EITHERDOUBLE``) map to index 0 ("unspecified"/"none"); bond types outside
    single/double/triple/aromatic (e.g. dative) map to single, and dummy atoms (``*``) to the
    unused atom index 118. Hu et al.'s loader raised on them instead.

    Example:
        >>> graph = HuFeaturizer()("CCO")
        >>> graph.x.tolist(), graph.edge_index.size(1)
        ([[5, 0], [5, 0], [7, 0]], 4)
    """

    version = 2  # 2: dummy atoms map to 118 instead of -1

    def __init__(self, motifs: bool = True) -> None:
        self.motifs = motifs
        chem = _rdkit()
        self._chem = chem
        tags = chem.rdchem.ChiralType
        self._chirality = {
            tags.CHI_UNSPECIFIED: 0,
            tags.CHI_TETRAHEDRAL_CW: 1,
            tags.CHI_TETRAHEDRAL_CCW: 2,
        }
        bonds = chem.rdchem.BondType
        self._bond_type = {bonds.SINGLE: 0, bonds.DOUBLE: 1, bonds.TRIPLE: 2, bonds.AROMATIC: 3}
        dirs = chem.rdchem.BondDir
        self._bond_dir = {dirs.NONE: 0, dirs.ENDUPRIGHT: 1, dirs.ENDDOWNRIGHT: 2}
        self._patterns = _motif_patterns() if motifs else []
        assert not motifs or len(self._patterns) == NUM_MOTIFS

    def __repr__(self) -> str:
        return f"{type(self).__name__}(motifs={self.motifs}, version={self.version})"

    def __call__(self, smiles: str) -> Data | None:
        mol = self._chem.MolFromSmiles(smiles) if smiles else None
        if mol is None or mol.GetNumAtoms() == 0:
            return None
        atoms = [
            [_atom_index(a.GetAtomicNum()), self._chirality.get(a.GetChiralTag(), 0)]
            for a in mol.GetAtoms()
        ]
        pairs: list[list[int]] = []
        attrs: list[list[int]] = []
        for bond in mol.GetBonds():
            begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            attr = [
                self._bond_type.get(bond.GetBondType(), 0),
                self._bond_dir.get(bond.GetBondDir(), 0),
            ]
            pairs += [[begin, end], [end, begin]]
            attrs += [attr, attr]
        data = Data(
            x=torch.tensor(atoms, dtype=torch.long),
            edge_index=torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1),
            edge_attr=torch.tensor(attrs, dtype=torch.long).reshape(-1, 2),
            smiles=smiles,
        )
        if self.motifs:
            present = [mol.HasSubstructMatch(p) for p in self._patterns]
            data.motifs = torch.tensor([present], dtype=torch.float)
        return data
