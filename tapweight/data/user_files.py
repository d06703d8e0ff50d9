"""Reading a user's own file: CSV, TSV or JSONL (plain or gzip), or plain lines of SMILES/text.

Every problem is one :class:`~tapweight.errors.DataError` line naming the file and, where there
is one, the column and the row (rows are counted as a spreadsheet shows them: the header is
row 1). A file over :func:`max_file_bytes` is refused before it is read.
"""

from __future__ import annotations

import csv
import json
import os
import zlib
from pathlib import Path

import pandas as pd

from tapweight.data.paths import open_text
from tapweight.errors import DataError

__all__ = [
    "MAX_FILE_BYTES_ENV",
    "TABLE_SUFFIXES",
    "LINE_SUFFIXES",
    "file_format",
    "max_file_bytes",
    "read_table",
    "read_lines",
    "require_columns",
    "describe_file",
]

MAX_FILE_BYTES_ENV = "TAPWEIGHT_MAX_DATASET_BYTES"
_DEFAULT_MAX_BYTES = 512 * 1024 * 1024
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl"}
LINE_SUFFIXES = {".txt": "lines", ".smi": "lines"}
# What reading a broken file raises: a truncated gzip stream ends in EOFError, a corrupt one in
# zlib.error, a bad gzip header in gzip.BadGzipFile (an OSError).
_UNREADABLE = (UnicodeDecodeError, OSError, EOFError, zlib.error)


def max_file_bytes() -> int:
    """The largest dataset file read: ``$TAPWEIGHT_MAX_DATASET_BYTES``, default 512 MiB."""
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not raw:
        return _DEFAULT_MAX_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise DataError(f"{MAX_FILE_BYTES_ENV}={raw!r} is not a positive number of bytes")
    return int(raw)


def file_format(path: Path) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``lines``, from the name (a ``.gz`` ending aside)."""
    suffix = Path(path.name.removesuffix(".gz")).suffix.lower()
    found = {**TABLE_SUFFIXES, **LINE_SUFFIXES}.get(suffix)
    if found is None:
        known = ", ".join(sorted({*TABLE_SUFFIXES, *LINE_SUFFIXES}))
        raise DataError(f"{path.name}: unknown file type {suffix or '(none)'!r}; use {known}")
    return found


def _check_size(path: Path, limit: int | None) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    limit = max_file_bytes() if limit is None else limit
    size = path.stat().st_size
    if size > limit:
        raise DataError(
            f"{path.name}: {size} bytes is over the limit of {limit} bytes; split the file or "
            f"raise {MAX_FILE_BYTES_ENV}"
        )


def _jsonl_frame(path: Path) -> pd.DataFrame:
    records = []
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path.name}: line {line_no} is not JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path.name}: line {line_no} is not a JSON object")
            records.append({k: "" if v is None else str(v) for k, v in record.items()})
    return pd.DataFrame.from_records(records).fillna("")


def read_table(path: Path, limit: int | None = None) -> pd.DataFrame:
    """Every cell as a string (missing: ``""``); refuses empty files and unreadable ones."""
    _check_size(path, limit)
    kind = file_format(path)
    if kind == "lines":
        raise DataError(
            f"{path.name}: a plain list of lines has no columns; a labeled dataset needs a "
            "CSV, TSV or JSONL file (lines are for a pretraining corpus)"
        )
    try:
        if kind == "jsonl":
            frame = _jsonl_frame(path)
        else:
            with open_text(path) as handle:
                frame = pd.read_csv(
                    handle,
                    sep="\t" if kind == "tsv" else ",",
                    dtype=str,
                    keep_default_na=False,
                    quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL,
                )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, *_UNREADABLE) as error:
        raise DataError(f"{path.name}: not readable as {kind.upper()} ({_reason(error)})") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path.name}: the file has no rows")
    return frame


def read_lines(path: Path, limit: int | None = None) -> list[str]:
    """Non-empty lines of a ``.txt``/``.smi`` corpus file."""
    _check_size(path, limit)
    try:
        with open_text(path) as handle:
            return [line.strip() for line in handle if line.strip()]
    except UnicodeDecodeError as error:
        raise DataError(f"{path.name}: not UTF-8 text (byte {error.start})") from None
    except _UNREADABLE as error:
        raise DataError(f"{path.name}: not readable as text ({_reason(error)})") from None


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def require_columns(frame: pd.DataFrame, wanted: dict[str, str], source: str) -> None:
    """Refuse a mapping whose columns are not in the file (``wanted``: field -> column)."""
    missing = [f"{column!r} ({field})" for field, column in wanted.items() if column not in frame]
    if missing:
        present = ", ".join(map(repr, frame.columns))
        raise DataError(f"{source}: no column {', '.join(missing)}; the columns are {present}")


def describe_file(path: Path, limit: int | None = None) -> dict[str, object]:
    """Format, rows and columns of an uploaded file (no column mapping needed)."""
    kind = file_format(path)
    if kind == "lines":
        return {"format": kind, "rows": len(read_lines(path, limit)), "columns": []}
    frame = read_table(path, limit)
    return {"format": kind, "rows": len(frame), "columns": list(frame.columns)}
