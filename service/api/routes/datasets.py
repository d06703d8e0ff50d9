"""/datasets: upload, list, inspect and delete the files a spec names by ``dataset_id``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import datasets as store
from service.api import links
from service.api.deps import DatabaseDep, OwnerDep, SessionDep
from service.models import Dataset
from service.schemas import DatasetPage, DatasetPublic, DatasetUploaded, Problem
from service.settings import Settings
from tapweight.errors import TapWeightError

router = APIRouter(
    prefix="/datasets",
    tags=["datasets"],
    responses={401: {"model": Problem, "description": "missing or unknown bearer token"}},
)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such dataset for this token"}
}
MAPPING_FIELDS = (
    "name", "smiles_column", "label_columns", "task_type", "text_column", "text_pair_column",
    "label_column", "split",
)  # fmt: skip
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{name: {"type": "string"} for name in MAPPING_FIELDS},
                    },
                },
                # The file's name says its format (.csv, .tsv, .jsonl, .txt, .smi).
                "encoding": {
                    "file": {
                        "headers": {
                            "Content-Disposition": {
                                "schema": {
                                    "type": "string",
                                    "example": 'form-data; name="file"; filename="assay.csv"',
                                }
                            }
                        }
                    }
                },
            }
        },
    }
}


def _invalid(message: str, *loc: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": message}])


def _dataset_or_404(session: Session, owner: str, ident: str) -> Dataset:
    dataset = store.get_dataset(session, owner, ident)
    if dataset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset {ident[:40]!r}")
    return dataset


def _inspect(dataset: Dataset, mapping: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    from tapweight.data.user_datasets import inspect_user_dataset
    from tapweight.data.user_specs import parse_user_dataset

    given: dict[str, Any] = {"name": "upload", **mapping, "path": dataset.path}
    if "label_columns" in given:
        given["label_columns"] = [c.strip() for c in given["label_columns"].split(",")]
    found = inspect_user_dataset(parse_user_dataset(given))
    return found.summary, found.warnings


def _store(
    request: Request, owner: str, upload: UploadFile, mapping: dict[str, str], settings: Settings
) -> tuple[DatasetUploaded, bool]:
    root = settings.uploads_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix=".upload-", delete=False) as handle:
        while chunk := upload.file.read(1 << 20):
            handle.write(chunk)
    with request.app.state.db.writer() as session:
        try:
            dataset, created = store.store_upload(
                session, owner, upload.filename or "upload.csv", Path(handle.name), root
            )
        except TapWeightError as error:
            raise _invalid(str(error), "file") from None
        inspection: dict[str, Any] | None = None
        warnings: list[str] = []
        if mapping:
            try:
                inspection, warnings = _inspect(dataset, mapping)
            except TapWeightError as error:
                if created:  # nothing half-done: the upload goes with its refusal
                    store.delete_dataset(session, dataset)
                raise _invalid(str(error)) from None
        public = DatasetPublic.model_validate(dataset).model_dump()
        uploaded = DatasetUploaded(
            **public, created=created, inspection=inspection, warnings=warnings
        )
        return uploaded, created


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetUploaded,
    responses={
        201: {"links": links.UPLOADED_DATASET},
        200: {
            "model": DatasetUploaded,
            "description": "the same bytes were uploaded before",
            "links": links.UPLOADED_DATASET,
        },
        413: {"model": Problem, "description": "a file over TAPWEIGHT_MAX_UPLOAD_BYTES"},
        415: {"model": Problem, "description": "a body that is not multipart/form-data"},
        422: {
            "description": "no file, or a file or column mapping a run cannot use (one line)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
            },
        },
    },
    openapi_extra=UPLOAD_BODY,
)
async def upload_dataset(owner: OwnerDep, request: Request, response: Response) -> DatasetUploaded:
    """Upload a CSV/TSV/JSONL (or SMILES/text lines) file in the form field ``file``; with a
    column mapping in the other fields (``smiles_column``, ``label_columns``, ``task_type``,
    ``text_column``, ``label_column``, ``split``, ...), the answer also says what a run sees."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the dataset as multipart/form-data, the file in the form field 'file'",
        )
    try:
        form = await request.form(max_files=1, max_fields=len(MAPPING_FIELDS))
    except StarletteHTTPException as error:  # Starlette's limits on parts, a broken body
        raise _invalid(str(error.detail)) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise _invalid("send the file in the multipart form field 'file'", "file")
    unknown = sorted(set(form) - {"file", *MAPPING_FIELDS})
    if unknown:
        raise _invalid(f"unknown field(s) {unknown}; known: file, {', '.join(MAPPING_FIELDS)}")
    mapping = {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v.strip()}
    settings = request.app.state.settings
    uploaded, created = await run_in_threadpool(_store, request, owner, upload, mapping, settings)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/datasets/{uploaded.id}"
    return uploaded


@router.get("", response_model=DatasetPage, responses={200: {"links": links.LISTED_DATASET}})
def list_datasets(
    owner: OwnerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> DatasetPage:
    """This token's datasets, newest first."""
    items, total = store.list_datasets(session, owner, limit, offset)
    return DatasetPage(
        items=[DatasetPublic.model_validate(d) for d in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=NOT_FOUND)
def get_dataset(dataset_id: str, owner: OwnerDep, session: SessionDep) -> DatasetPublic:
    """One dataset: file name, format, size, rows and columns."""
    return DatasetPublic.model_validate(_dataset_or_404(session, owner, dataset_id))


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **NOT_FOUND,
        409: {"model": Problem, "description": "a job that has not finished uses it"},
    },
)
def delete_dataset(dataset_id: str, owner: OwnerDep, database: DatabaseDep) -> Response:
    """Remove a dataset and its file; refused while an unfinished job uses it."""
    with database.writer() as session:
        dataset = _dataset_or_404(session, owner, dataset_id)
        try:
            store.delete_dataset(session, dataset)
        except store.DatasetInUse as error:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"dataset {dataset_id} is used by unfinished job(s) {', '.join(error.job_ids)}; "
                "cancel them or wait for them to end",
            ) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
