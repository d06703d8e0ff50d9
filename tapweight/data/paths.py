"""Where files come from: the user's data directory, then the download cache, then the network.

Lookup order for ``<key>/<name>``: ``<data_dir>/<key>/<name>`` (plain or ``.gz``), then
``<cache_dir>/data/<key>/<name>`` (plain or ``.gz``), then a download from the registry's
address into the cache, checked against the pinned sha256. A data directory is never written to:
it may be read-only (a shared copy).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tapweight.data.registry import PRETRAINED_WEIGHTS, WEIGHTS_KEY, RemoteFile, get_dataset_info
from tapweight.errors import DataError, ModelError

__all__ = [
    "DATA_DIR_ENV",
    "CACHE_DIR_ENV",
    "resolve_data_dir",
    "cache_dir",
    "dataset_file",
    "pretrained_weights_file",
    "open_text",
    "sha256_of",
]

DATA_DIR_ENV = "TAPWEIGHT_DATA_DIR"
CACHE_DIR_ENV = "TAPWEIGHT_CACHE_DIR"
_OFFLINE_ENV = "TAPWEIGHT_OFFLINE"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The data directory from the argument, else ``$TAPWEIGHT_DATA_DIR``, else None."""
    raw = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data directory {str(path)!r} does not exist; pass --data-dir or set "
            f"{DATA_DIR_ENV} to a folder holding one sub-folder per dataset"
        )
    return path.resolve()


def cache_dir() -> Path:
    """Writable folder for downloads and processed (featurized/tokenized) caches."""
    raw = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "tapweight"
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _candidates(folder: Path, name: str) -> list[Path]:
    base = name.removesuffix(".gz")
    return [folder / base, folder / f"{base}.gz"]


def _existing(folder: Path, name: str) -> Path | None:
    return next((p for p in _candidates(folder, name) if p.is_file()), None)


def _download(remote: RemoteFile, target: Path) -> Path:
    """Download ``remote`` to ``target`` atomically, verifying or pinning its sha256."""
    if os.environ.get(_OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        raise OSError(f"{_OFFLINE_ENV} is set")
    target.parent.mkdir(parents=True, exist_ok=True)
    if remote.url.endswith(".gz") and not target.name.endswith(".gz"):
        target = target.with_name(target.name + ".gz")
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(remote.url, timeout=60) as response:  # noqa: S310
                shutil.copyfileobj(response, tmp)
        except BaseException:
            os.unlink(tmp.name)
            raise
    got = sha256_of(Path(tmp.name))
    if remote.sha256 is not None and got != remote.sha256:
        os.unlink(tmp.name)
        raise DataError(
            f"checksum mismatch for {remote.url}: expected sha256 {remote.sha256}, got {got}; "
            "the upstream file changed or the download was corrupted"
        )
    os.replace(tmp.name, target)
    if remote.sha256 is None:
        # Trust on first use: later reads of this cached file are checked against this hash.
        target.with_name(target.name + ".sha256").write_text(got + "\n")
    return target


def _verify_pinned(path: Path) -> None:
    pin = path.with_name(path.name + ".sha256")
    if pin.is_file() and pin.read_text().strip() != sha256_of(path):
        raise DataError(f"{path} no longer matches the sha256 recorded at download ({pin})")


def _locate(
    folder_key: str,
    remote: RemoteFile,
    data_dir: str | os.PathLike[str] | None,
    aliases: tuple[str, ...] = (),
) -> Path | None:
    root = resolve_data_dir(data_dir)
    if root is not None:
        for folder in (folder_key, *aliases):
            if found := _existing(root / folder, remote.name):
                return found
    cached_folder = cache_dir() / "data" / folder_key
    if found := _existing(cached_folder, remote.name):
        _verify_pinned(found)
        return found
    try:
        return _download(remote, cached_folder / remote.name)
    except (OSError, urllib.error.URLError):
        return None


def dataset_file(
    key: str, name: str, data_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """Path of one file of dataset ``key``; None for a missing optional file.

    Raises:
        DataError: a required file is neither local nor downloadable, naming the file, the
            folder it was looked for in and the flag/environment variable to set.
    """
    info = get_dataset_info(key)
    remote = next((f for f in info.files if f.name == name), None)
    if remote is None:
        raise DataError(f"dataset {key!r} has no file named {name!r}")
    found = _locate(key, remote, data_dir, info.folder_aliases)
    if found is None and remote.required:
        root = resolve_data_dir(data_dir)
        where = f"{root / key}" if root else f"no data directory ({DATA_DIR_ENV} is not set)"
        raise DataError(
            f"dataset {key!r}: file {name!r} (or {name}.gz) not found in {where}, and the "
            f"download from {remote.url} failed (offline?). Put the file in "
            f"<data dir>/{key}/ and pass --data-dir or set {DATA_DIR_ENV}."
        )
    return found


def pretrained_weights_file(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of a Hu et al. 2020 weight file, e.g. ``gcn_supervised_contextpred``."""
    remote = PRETRAINED_WEIGHTS.get(name.removesuffix(".pth"))
    if remote is None:
        raise ModelError(
            f"unknown pretrained weights {name!r}; known: {', '.join(sorted(PRETRAINED_WEIGHTS))}"
        )
    found = _locate(WEIGHTS_KEY, remote, data_dir)
    if found is None:
        raise ModelError(
            f"pretrained weights {remote.name!r} not found under <data dir>/{WEIGHTS_KEY}/ and "
            f"the download from {remote.url} failed; pass --data-dir or set {DATA_DIR_ENV}"
        )
    return found


def open_text(path: Path) -> IO[str]:
    """Open a plain or gzip text file (decided by the magic bytes, not the suffix)."""
    with path.open("rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")
