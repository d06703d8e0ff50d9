"""The user's own datasets, as an experiment spec or ``tapweight data show`` names them.

A dataset that is not in the registry is a mapping naming its file and what its columns mean:

.. code-block:: yaml

    # molecules: CSV/TSV, plain or gzip
    {name: assay, path: assay.csv, smiles_column: mol, label_columns: [active],
     task_type: classification, split: scaffold}
    # text: CSV/TSV/JSONL
    {name: reviews, path: reviews.jsonl, text_column: body, label_column: stars, split: random}

``split`` is ``scaffold``, ``random`` or ``random_scaffold`` (molecules) or ``random`` (text), or
``column:<name>``: a column whose cells say ``train``, ``valid`` or ``test`` for each row. On the
service a file uploaded before is named by ``dataset_id`` instead of ``path``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from tapweight.errors import DataError

__all__ = [
    "MoleculeFileSpec",
    "TextFileSpec",
    "UserDatasetSpec",
    "USER_DATASET",
    "user_dataset_domain",
    "parse_user_dataset",
    "load_user_dataset_file",
    "resolve_user_path",
    "split_column",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""A user dataset's name is its key in trial names and reports: no '/', as registry keys."""
_MOLECULE_SPLITS = ("scaffold", "random", "random_scaffold")


def split_column(split: str) -> str | None:
    """The column named by ``column:<name>``, else None."""
    return split.removeprefix("column:") if split.startswith("column:") else None


def _check_split(split: str, kinds: tuple[str, ...]) -> str:
    if split in kinds or (split.startswith("column:") and split_column(split)):
        return split
    raise ValueError(f"unknown split {split!r}; use {', '.join(kinds)} or column:<column name>")


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="the dataset's name in trials and reports")
    path: str | None = Field(
        None, description="CSV/TSV (molecules) or CSV/TSV/JSONL (text) file, plain or gzip"
    )
    dataset_id: str | None = Field(
        None, description="an upload on the service (POST /datasets) instead of a path"
    )

    @field_validator("dataset_id")
    @classmethod
    def _id_form(cls, value: str | None) -> str | None:
        if value is not None and not (len(value) == 32 and value.isalnum()):
            raise ValueError(f"{value[:40]!r} is not a dataset id (32 characters from /datasets)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> _FileSpec:
        if self.path is None and self.dataset_id is None:
            raise ValueError("give the file's path (or, on the service, its dataset_id)")
        return self

    def located(self, data_dir: str | os.PathLike[str] | None = None) -> Path:
        """The file to read (see :func:`resolve_user_path`)."""
        if self.path is None:
            raise DataError(
                f"dataset {self.name!r}: dataset_id {self.dataset_id!r} names an upload on a "
                "service; run the spec there (`tapweight submit`) or give `path`"
            )
        return resolve_user_path(self.path, data_dir)


class MoleculeFileSpec(_FileSpec):
    """A molecule CSV/TSV: one SMILES column, one or more label columns (one task each)."""

    smiles_column: str = Field(min_length=1)
    label_columns: list[str] = Field(min_length=1)
    task_type: Literal["classification", "regression"] = Field(
        description="classification: 0/1 labels per column (empty = missing); regression: numbers"
    )
    split: str = Field("scaffold", description="scaffold, random, random_scaffold or column:<name>")

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        return _check_split(value, _MOLECULE_SPLITS)

    @field_validator("label_columns")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"label columns repeat: {value}")
        return value

    @property
    def registry_task_type(self) -> str:
        """The task type the molecule loaders and heads use (``binary`` or ``regression``)."""
        return "binary" if self.task_type == "classification" else "regression"


class TextFileSpec(_FileSpec):
    """A text CSV/TSV/JSONL: a text column, optionally a second text (pairs), one label."""

    text_column: str = Field(min_length=1)
    text_pair_column: str | None = None
    label_column: str = Field(min_length=1)
    task_type: Literal["classification", "regression"] = "classification"
    split: str = Field("random", description="random (80/10/10, seeded) or column:<name>")

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        return _check_split(value, ("random",))


def user_dataset_domain(value: Any) -> str:
    """``molecule`` or ``text`` for a mapping (what a spec's discriminator asks)."""
    if isinstance(value, MoleculeFileSpec):
        return "molecule"
    if isinstance(value, TextFileSpec):
        return "text"
    if isinstance(value, dict) and "text_column" in value and "smiles_column" not in value:
        return "text"
    return "molecule"


UserDatasetSpec = Annotated[
    Annotated[MoleculeFileSpec, Tag("molecule")] | Annotated[TextFileSpec, Tag("text")],
    Discriminator(user_dataset_domain),
]
"""A molecule or text file mapping, told apart by ``smiles_column`` / ``text_column``."""
USER_DATASET = (MoleculeFileSpec, TextFileSpec)


def parse_user_dataset(data: Any) -> MoleculeFileSpec | TextFileSpec:
    """A mapping as a spec; a :class:`DataError` lists every bad field."""
    from pydantic import TypeAdapter, ValidationError

    from tapweight.errors import describe_validation_error

    if not isinstance(data, dict):
        raise DataError(f"a dataset mapping is a mapping of fields, got {type(data).__name__}")
    try:
        return TypeAdapter(UserDatasetSpec).validate_python(data)
    except ValidationError as error:
        raise DataError(f"dataset mapping: {describe_validation_error(error)}") from None


def load_user_dataset_file(path: str | os.PathLike[str]) -> MoleculeFileSpec | TextFileSpec:
    """A dataset mapping from a YAML/JSON file; its relative ``path`` is relative to the file."""
    import yaml

    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"{source}: not a readable YAML mapping ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        file = Path(data["path"]).expanduser()
        if not file.is_absolute() and (source.parent / file).exists():
            data = {**data, "path": str((source.parent / file).resolve())}
    return parse_user_dataset(data)


def resolve_user_path(path: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """An absolute path as it is; a relative one in the current folder, else in the data
    directory (``--data-dir`` / ``TAPWEIGHT_DATA_DIR``)."""
    from tapweight.data.paths import resolve_data_dir

    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        found = given
    else:
        root = resolve_data_dir(data_dir)
        found = root / given if root is not None and (root / given).exists() else given
    if not found.is_file():
        where = " (looked in the current folder and the data directory)"
        raise DataError(
            f"dataset file {path!r} does not exist{'' if given.is_absolute() else where}"
        )
    return found.resolve()
