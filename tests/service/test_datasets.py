"""/datasets: uploads are content-addressed per token, checked, usable in a spec by
dataset_id, and invisible to every other token."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from tests.data.test_user_datasets import freesolv
from tests.service.conftest import ALICE, BOB, settings_for, tiny_spec


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for(
        f"sqlite:///{tmp_path / 'service.db'}", tmp_path, max_upload_bytes=64 * 1024
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def csv_bytes(rows: int = 120) -> bytes:
    return freesolv().head(rows).to_csv(index=False).encode()


def upload(client: TestClient, content: bytes, headers=ALICE, name="assay.csv", **fields):
    return client.post("/datasets", headers=headers, files={"file": (name, content)}, data=fields)


def mapping(dataset_id: str) -> dict:
    return {
        "name": "assay",
        "dataset_id": dataset_id,
        "smiles_column": "molecule",
        "label_columns": ["hydration"],
        "task_type": "regression",
        "split": "random",
    }


def test_an_upload_is_stored_once_per_content_and_described(app_client):
    first = upload(app_client, csv_bytes())
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] and body["rows"] == 120 and body["format"] == "csv"
    assert body["columns"] == ["iupac", "molecule", "hydration", "calc"]
    assert first.headers["location"] == f"/datasets/{body['id']}"
    again = upload(app_client, csv_bytes(), name="renamed.csv")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert not again.json()["created"]
    listed = app_client.get("/datasets", headers=ALICE).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    assert app_client.get(f"/datasets/{body['id']}", headers=ALICE).json()["rows"] == 120


def test_a_column_mapping_gets_what_a_run_sees(app_client):
    answer = upload(app_client, csv_bytes(), smiles_column="molecule", label_columns="hydration",
                    task_type="regression", split="random")  # fmt: skip
    assert answer.status_code == 201, answer.text
    inspection = answer.json()["inspection"]
    assert inspection["split"] == {"train": 96, "valid": 12, "test": 12}
    assert inspection["invalid_smiles"] == 0 and inspection["tasks"] == 1


def test_bad_uploads_are_one_line_problems(app_client):
    wrong = upload(app_client, csv_bytes(), smiles_column="smiles", label_columns="hydration",
                   task_type="regression")  # fmt: skip
    assert wrong.status_code == 422
    assert "no column 'smiles' (smiles_column); the columns are" in wrong.json()["detail"][0]["msg"]
    assert app_client.get("/datasets", headers=ALICE).json()["total"] == 0  # not half-kept
    unknown = upload(app_client, b"x", name="sheet.xlsx")
    assert unknown.status_code == 422 and "unknown file type" in unknown.text
    empty = upload(app_client, b"smiles,y\n")
    assert empty.status_code == 422 and "has no rows" in empty.text
    not_form = app_client.post("/datasets", headers=ALICE, content=csv_bytes())
    assert not_form.status_code == 415
    no_file = app_client.post("/datasets", headers=ALICE, files={"other": ("a.csv", b"a")})
    assert no_file.status_code == 422 and "form field 'file'" in no_file.text
    big = upload(app_client, csv_bytes(642) * 3)
    assert big.status_code == 413 and "limit of 65536 bytes" in big.text
    assert app_client.post("/datasets", files={"file": ("a.csv", b"a")}).status_code == 401


@pytest.mark.parametrize("name", ["assay.csv", "assay.jsonl", "corpus.txt"])
@pytest.mark.parametrize(
    "content",
    [gzip.compress(b"smiles,y\nCCO,1\n")[:12], gzip.compress(b"smiles,y\nCCO,1\n")[:-9],
     b"\x1f\x8b\x08\x00" + bytes(range(40))],
    ids=["truncated-header", "truncated-stream", "corrupt-stream"],
)  # fmt: skip
def test_a_broken_gzip_upload_is_a_422_naming_the_file(app_client, name, content):
    """Gzip is recognized by its magic bytes; a broken stream was a 500 (found by the stateful
    fuzz run, which uploads a .csv of random bytes)."""
    response = upload(app_client, content, name=name)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"].startswith(f"{name}: ")  # one line, no trace


def test_a_spec_names_an_upload_by_its_id(app_client):
    dataset_id = upload(app_client, csv_bytes()).json()["id"]
    spec = tiny_spec(datasets=[mapping(dataset_id)])
    accepted = app_client.post("/jobs", headers=ALICE, json=spec)
    assert accepted.status_code == 202, accepted.text
    job = app_client.get(f"/jobs/{accepted.json()['id']}", headers=ALICE).json()
    entry = job["spec"]["datasets"][0]
    assert entry["dataset_id"] == dataset_id and entry["path"].endswith("assay.csv")
    # The job is queued (nothing runs here), so the dataset is in use.
    conflict = app_client.delete(f"/datasets/{dataset_id}", headers=ALICE)
    assert conflict.status_code == 409 and accepted.json()["id"] in conflict.text
    app_client.post(f"/jobs/{accepted.json()['id']}/cancel", headers=ALICE)
    assert app_client.delete(f"/datasets/{dataset_id}", headers=ALICE).status_code == 204
    assert app_client.get(f"/datasets/{dataset_id}", headers=ALICE).status_code == 404


def test_a_spec_mapping_is_checked_on_submit(app_client):
    dataset_id = upload(app_client, csv_bytes()).json()["id"]
    spec = tiny_spec(datasets=[{**mapping(dataset_id), "label_columns": ["expt"]}])
    refused = app_client.post("/jobs", headers=ALICE, json=spec)
    assert refused.status_code == 422
    problem = refused.json()["detail"][0]
    assert problem["loc"] == ["body", "datasets", 0]
    assert "no column 'expt' (label_columns[0])" in problem["msg"]
    both = tiny_spec(datasets=[{**mapping(dataset_id), "path": "/etc/passwd"}])
    assert "not both" in app_client.post("/jobs", headers=ALICE, json=both).text
    outside = {**mapping(dataset_id), "path": "/etc/passwd"}
    outside.pop("dataset_id")
    refused = app_client.post("/jobs", headers=ALICE, json=tiny_spec(datasets=[outside]))
    assert refused.status_code == 422 and "data root" in refused.text


def test_another_token_cannot_see_use_or_delete_a_dataset(app_client):
    dataset_id = upload(app_client, csv_bytes()).json()["id"]
    assert app_client.get(f"/datasets/{dataset_id}", headers=BOB).status_code == 404
    assert app_client.get("/datasets", headers=BOB).json()["total"] == 0
    assert app_client.delete(f"/datasets/{dataset_id}", headers=BOB).status_code == 404
    used = app_client.post("/jobs", headers=BOB, json=tiny_spec(datasets=[mapping(dataset_id)]))
    assert used.status_code == 422 and "no dataset" in used.text
    # Bob's upload of the same bytes is his own dataset, with another id.
    own = upload(app_client, csv_bytes(), headers=BOB)
    assert own.status_code == 201 and own.json()["id"] != dataset_id
    assert app_client.get(f"/datasets/{dataset_id}", headers=ALICE).status_code == 200
