"""Store operations on uploaded datasets: content-addressed per owner, kept under the uploads
folder the Ray nodes see, checked by the same reader a trial uses
(:mod:`tapweight.data.user_files`), and named in specs by ``dataset_id``."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.models import ACTIVE_STATUSES, Dataset, Job
from tapweight.data.paths import sha256_of
from tapweight.data.user_files import describe_file, file_format

__all__ = [
    "DatasetInUse",
    "dataset_id",
    "store_upload",
    "get_dataset",
    "list_datasets",
    "delete_dataset",
    "jobs_using",
    "resolve_dataset_ids",
]


class DatasetInUse(Exception):
    """A job that has not finished refers to the dataset."""

    def __init__(self, job_ids: list[str]) -> None:
        super().__init__(", ".join(job_ids))
        self.job_ids = job_ids


def dataset_id(owner: str, sha256: str) -> str:
    """The id of ``owner``'s upload of these bytes: the same bytes give the same id for one
    owner, and ids tell nothing across owners."""
    return hashlib.sha256(f"{owner}:{sha256}".encode()).hexdigest()[:32]


def is_dataset_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _safe_filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name).lstrip(".")
    return cleaned[-128:] or "upload.csv"


def store_upload(
    session: Session, owner: str, filename: str, upload: Path, root: Path
) -> tuple[Dataset, bool]:
    """Keep the file at ``upload`` (moved away) as ``owner``'s dataset; ``(dataset, False)``
    when the same bytes were uploaded before.

    Raises:
        DataError: the file's type or content cannot be read (the upload is discarded).
    """
    name = _safe_filename(filename)
    try:
        file_format(Path(name))  # the type first: nothing is stored for an unknown one
        sha = sha256_of(upload)
        ident = dataset_id(owner, sha)
        if (existing := get_dataset(session, owner, ident)) is not None:
            return existing, False
        folder = root / ident
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        shutil.move(upload, target)
    finally:
        upload.unlink(missing_ok=True)
    try:
        described = describe_file(target)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    dataset = Dataset(
        id=ident,
        owner=owner,
        sha256=sha,
        filename=name,
        format=str(described["format"]),
        size_bytes=target.stat().st_size,
        rows=int(described["rows"]),  # type: ignore[call-overload]
        columns=list(described["columns"]),  # type: ignore[call-overload]
        path=str(target),
    )
    session.add(dataset)
    try:
        session.commit()
        return dataset, True
    except IntegrityError:  # the same bytes, uploaded concurrently: keep the first
        session.rollback()
        earlier = get_dataset(session, owner, ident)
        if earlier is None:
            raise
        return earlier, False


def get_dataset(session: Session, owner: str, ident: str) -> Dataset | None:
    """The dataset when it exists and belongs to ``owner`` (another owner's is not found)."""
    dataset = session.get(Dataset, ident) if is_dataset_id(ident) else None
    return dataset if dataset is not None and dataset.owner == owner else None


def list_datasets(
    session: Session, owner: str, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    query = select(Dataset).where(Dataset.owner == owner)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit).offset(offset)
    return list(session.scalars(page)), total


def jobs_using(session: Session, owner: str, ident: str) -> list[str]:
    """``owner``'s unfinished jobs whose spec names the dataset."""
    active = session.scalars(select(Job).where(Job.owner == owner, Job.status.in_(ACTIVE_STATUSES)))
    return [
        job.id
        for job in active
        if any(
            isinstance(entry, dict) and entry.get("dataset_id") == ident
            for entry in job.spec.get("datasets", [])
        )
    ]


def delete_dataset(session: Session, dataset: Dataset) -> None:
    """Remove the dataset and its file, unless an unfinished job refers to it."""
    using = jobs_using(session, dataset.owner, dataset.id)
    if using:
        raise DatasetInUse(using)
    folder = Path(dataset.path).parent
    session.delete(dataset)
    session.commit()
    shutil.rmtree(folder, ignore_errors=True)


def resolve_dataset_ids(
    session: Session, owner: str, spec: dict[str, Any]
) -> tuple[set[int], list[dict[str, Any]]]:
    """Point every ``dataset_id`` entry of the spec's datasets at its file (in place): the
    indices resolved, and a problem per id this owner has no dataset for."""
    resolved: set[int] = set()
    problems: list[dict[str, Any]] = []
    datasets = spec.get("datasets")
    if not isinstance(datasets, list):
        return resolved, problems
    for index, entry in enumerate(datasets):
        if not isinstance(entry, dict) or not isinstance(entry.get("dataset_id"), str):
            continue
        loc = ("body", "datasets", index, "dataset_id")
        if entry.get("path") is not None:
            message = "give dataset_id or path, not both (the service fills the path)"
            problems.append({"type": "value_error", "loc": loc, "msg": message})
            continue
        found = get_dataset(session, owner, entry["dataset_id"])
        if found is None:
            shown = entry["dataset_id"][:40]
            message = f"no dataset {shown!r} for this token (GET /datasets lists yours)"
            problems.append({"type": "value_error", "loc": loc, "msg": message})
            continue
        entry["path"] = found.path
        resolved.add(index)
    return resolved, problems
