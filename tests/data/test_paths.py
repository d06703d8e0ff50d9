"""File lookup (data dir, cache, download) and checksum handling, against a local HTTP server."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapweight.data import paths
from tapweight.data.molecules import MoleculeDataset, read_molecule_table
from tapweight.data.paths import dataset_file, open_text, pretrained_weights_file, resolve_data_dir
from tapweight.data.registry import DATASETS, RemoteFile
from tapweight.errors import DataError, ModelError

LIPO = "Lipophilicity.csv"
LIPO_BYTES = b"CMPD_CHEMBLID,exp,smiles\nCHEMBL1,3.54,CCO\nCHEMBL2,-1.18,c1ccccc1O\nCHEMBL3,,CCN\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (folder, base url)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def online(tmp_path, monkeypatch) -> Path:
    """Allow downloads (to the local server only) into a cache private to this test."""
    monkeypatch.delenv("TAPWEIGHT_OFFLINE", raising=False)
    for proxy in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    cache = tmp_path / "cache"
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(cache))
    monkeypatch.delenv("TAPWEIGHT_DATA_DIR", raising=False)
    return cache


def _point_lipophilicity_at(monkeypatch, url: str, sha256: str | None) -> RemoteFile:
    remote = RemoteFile(LIPO, url, sha256)
    patched = dataclasses.replace(DATASETS["lipophilicity"], files=(remote,))
    monkeypatch.setitem(DATASETS, "lipophilicity", patched)
    return remote


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_with_correct_checksum_lands_in_cache_and_loads(served, online, monkeypatch):
    root, base = served
    (root / "lipo.csv").write_bytes(LIPO_BYTES)
    _point_lipophilicity_at(monkeypatch, base + "lipo.csv", hashlib.sha256(LIPO_BYTES).hexdigest())
    found = dataset_file("lipophilicity", LIPO)
    assert found == online / "data" / "lipophilicity" / LIPO
    assert found.read_bytes() == LIPO_BYTES
    assert not found.with_name(LIPO + ".sha256").exists()  # pinned in the registry instead
    ds = MoleculeDataset("lipophilicity")
    assert ds.smiles == ["CCO", "c1ccccc1O", "CCN"]
    assert ds[1].y.item() == pytest.approx(-1.18)
    # second lookup is served from the cache: the server no longer has the file
    (root / "lipo.csv").unlink()
    assert dataset_file("lipophilicity", LIPO) == found


def test_checksum_mismatch_leaves_nothing_in_cache(served, online, monkeypatch):
    root, base = served
    (root / "lipo.csv").write_bytes(LIPO_BYTES)
    _point_lipophilicity_at(monkeypatch, base + "lipo.csv", "0" * 64)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        dataset_file("lipophilicity", LIPO)
    assert hashlib.sha256(LIPO_BYTES).hexdigest() in str(info.value)
    assert _files_under(online / "data") == []
    with pytest.raises(DataError, match="checksum mismatch"):
        read_molecule_table("lipophilicity")
    assert _files_under(online / "data") == []


def test_unpinned_download_records_hash_and_detects_tampering(served, online, monkeypatch):
    root, base = served
    (root / "lipo.csv").write_bytes(LIPO_BYTES)
    _point_lipophilicity_at(monkeypatch, base + "lipo.csv", None)
    found = dataset_file("lipophilicity", LIPO)
    pin = found.with_name(LIPO + ".sha256")
    assert pin.read_text().strip() == hashlib.sha256(LIPO_BYTES).hexdigest()
    assert dataset_file("lipophilicity", LIPO) == found  # untouched: still fine
    found.write_bytes(LIPO_BYTES.replace(b"3.54", b"9.99"))
    with pytest.raises(DataError, match="no longer matches the sha256"):
        dataset_file("lipophilicity", LIPO)
    with pytest.raises(DataError, match="no longer matches"):
        MoleculeDataset("lipophilicity")


def test_gz_url_is_stored_gzipped_and_read_transparently(served, online, monkeypatch):
    root, base = served
    packed = gzip.compress(LIPO_BYTES)
    (root / "Lipophilicity.csv.gz").write_bytes(packed)
    _point_lipophilicity_at(monkeypatch, base + "Lipophilicity.csv.gz", None)
    found = dataset_file("lipophilicity", LIPO)
    assert found.name == LIPO + ".gz" and found.read_bytes() == packed
    assert read_molecule_table("lipophilicity").smiles == ["CCO", "c1ccccc1O", "CCN"]


def test_http_error_on_required_file_is_a_data_error(served, online, monkeypatch):
    _, base = served
    _point_lipophilicity_at(monkeypatch, base + "missing.csv", None)
    with pytest.raises(DataError, match=f"{LIPO}.*not found.*download from {base}missing.csv"):
        dataset_file("lipophilicity", LIPO)
    assert _files_under(online / "data") == []


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_offline_flag_blocks_downloads(served, online, monkeypatch, value):
    root, base = served
    (root / "lipo.csv").write_bytes(LIPO_BYTES)
    _point_lipophilicity_at(monkeypatch, base + "lipo.csv", None)
    monkeypatch.setenv("TAPWEIGHT_OFFLINE", value)
    with pytest.raises(DataError, match="TAPWEIGHT_DATA_DIR"):
        dataset_file("lipophilicity", LIPO)
    assert _files_under(online / "data") == []


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_offline_flag_off_values_allow_downloads(served, online, monkeypatch, value):
    root, base = served
    (root / "lipo.csv").write_bytes(LIPO_BYTES)
    _point_lipophilicity_at(monkeypatch, base + "lipo.csv", None)
    monkeypatch.setenv("TAPWEIGHT_OFFLINE", value)
    assert dataset_file("lipophilicity", LIPO).read_bytes() == LIPO_BYTES


# ------------------------------------------------------------------------- local lookups


def test_data_dir_wins_over_cache_and_is_never_written(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "data" / "lipophilicity" / LIPO
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"CMPD_CHEMBLID,exp,smiles\nX,1,C\n")
    local = tmp_path / "data" / "lipophilicity" / LIPO
    local.parent.mkdir(parents=True)
    local.write_bytes(LIPO_BYTES)
    before = _files_under(tmp_path / "data")
    assert dataset_file("lipophilicity", LIPO, tmp_path / "data") == local.resolve()
    MoleculeDataset("lipophilicity", data_dir=tmp_path / "data")
    assert _files_under(tmp_path / "data") == before
    # without a data dir, the cached copy is used
    monkeypatch.delenv("TAPWEIGHT_DATA_DIR", raising=False)
    assert dataset_file("lipophilicity", LIPO) == cached


def test_env_var_is_the_default_data_dir(tmp_path, monkeypatch):
    local = tmp_path / "lipophilicity" / LIPO
    local.parent.mkdir()
    local.write_bytes(LIPO_BYTES)
    monkeypatch.setenv("TAPWEIGHT_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()
    assert dataset_file("lipophilicity", LIPO) == local.resolve()
    monkeypatch.delenv("TAPWEIGHT_DATA_DIR")
    assert resolve_data_dir() is None


def test_plain_file_preferred_over_gz_and_gz_found_alone(tmp_path):
    folder = tmp_path / "lipophilicity"
    folder.mkdir()
    (folder / (LIPO + ".gz")).write_bytes(gzip.compress(LIPO_BYTES))
    assert dataset_file("lipophilicity", LIPO, tmp_path).name == LIPO + ".gz"
    (folder / LIPO).write_bytes(LIPO_BYTES)
    assert dataset_file("lipophilicity", LIPO, tmp_path).name == LIPO


def test_open_text_decides_by_magic_bytes(tmp_path):
    disguised = tmp_path / "looks_plain.csv"
    disguised.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    with open_text(disguised) as handle:
        assert handle.read() == "a,b\n1,2\n"
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(b"a,b\n")
    with open_text(plain) as handle:
        assert handle.read() == "a,b\n"


def test_unknown_file_and_weights_names(tmp_path):
    with pytest.raises(DataError, match="has no file named 'other.csv'"):
        dataset_file("lipophilicity", "other.csv", tmp_path)
    with pytest.raises(ModelError, match="unknown pretrained weights 'gin_magic'.*gcn_contextpred"):
        pretrained_weights_file("gin_magic", tmp_path)


def test_missing_weights_offline_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="gcn_supervised.pth.*TAPWEIGHT_DATA_DIR"):
        pretrained_weights_file("gcn_supervised", tmp_path)


def test_optional_file_missing_gives_none(tmp_path):
    (tmp_path / "zinc250k_subset_jtvae").mkdir()
    (tmp_path / "zinc250k_subset_jtvae" / "zinc_valid.txt").write_text("CCO\nCCN\n")
    assert dataset_file("zinc250k_subset_jtvae", "zinc_test.txt", tmp_path) is None
    assert read_molecule_table("zinc250k_subset_jtvae", tmp_path).smiles == ["CCO", "CCN"]


def test_cache_dir_is_created(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("TAPWEIGHT_CACHE_DIR", str(target))
    assert paths.cache_dir() == target and target.is_dir()


@pytest.mark.dataset
def test_shared_files_match_registry_checksums(data_dir):
    bbbp = dataset_file("bbbp", "BBBP.csv", data_dir)
    assert paths.sha256_of(bbbp) == DATASETS["bbbp"].files[0].sha256
    weights = pretrained_weights_file("gcn_supervised_contextpred", data_dir)
    expected = paths.PRETRAINED_WEIGHTS["gcn_supervised_contextpred"].sha256
    assert paths.sha256_of(weights) == expected
