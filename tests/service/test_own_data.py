"""Bring your own data, end to end against a live service on Ray: a CSV the user has (a real
dataset with its columns renamed) is uploaded by `tapweight submit`, trained on, and the
recommended encoder `tapweight fetch` downloads is finetuned with `tapweight finetune`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.ray_head import free_port
from tapweight.client import Client, ClientError
from tests.data.test_user_datasets import freesolv
from tests.service.conftest import tiny_spec
from tests.support import cli_in_process

pytestmark = pytest.mark.slow


def tapweight(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The console script as a process (``submit`` and ``fetch`` are clients of the service
    and run in process, ``cli_in_process``; ``finetune`` trains, so it gets its own)."""
    command = [sys.executable, "-m", "tapweight.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_upload_job_artifact_and_finetune_the_downloaded_encoder(ray_cluster, serve, tmp_path):
    server = serve(f"sqlite:///{tmp_path / 'service.db'}", RAY_ADDRESS=ray_cluster)
    freesolv().head(150).to_csv(tmp_path / "assay.csv", index=False)
    dataset = {
        "name": "assay", "path": "assay.csv", "smiles_column": "molecule",
        "label_columns": ["hydration"], "task_type": "regression", "split": "random",
    }  # fmt: skip
    spec = tiny_spec(name="own-data", datasets=[dataset], strategies=["uniform"])
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "assay.yaml").write_text(yaml.safe_dump(dataset))

    submitted = cli_in_process("submit", str(tmp_path / "spec.yaml"), "--server", server.url,
                               "--token", "token-alice", "--json")  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = json.loads(submitted.stdout[submitted.stdout.index("{") :])
    assert job["status"] == "succeeded" and job["results"][0]["dataset"] == "assay"
    recommended = job["recommended_artifacts"]["assay"]

    with Client(server.url, token="token-alice") as client:
        listed = client.artifacts(job["id"])
        assert [a["id"] for a in listed["items"]] == [recommended]
        assert listed["items"][0]["weights"] == [0.5, 0.5] and listed["items"][0]["recommended"]
        uploads = client.datasets()
        assert len(uploads) == 1 and uploads[0]["rows"] == 150
    with Client(server.url, token="token-bob") as other, pytest.raises(ClientError, match="404"):
        other.artifacts(job["id"])

    fetched = cli_in_process("fetch", job["id"], "--server", server.url, "--token",
                             "token-alice", "--out", str(tmp_path / "out"), "--json")  # fmt: skip
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    written = json.loads(fetched.stdout)
    encoder = Path(written["encoder:assay"]) / "encoder.pt"
    assert encoder.is_file() and (encoder.parent / "encoder.json").is_file()
    assert "uniform" in (tmp_path / "out" / "report.md").read_text()

    finetuned = tapweight("finetune", "--dataset", str(tmp_path / "assay.yaml"), "--encoder",
                          str(encoder), "--epochs", "1", "--json")  # fmt: skip
    assert finetuned.returncode == 0, finetuned.stdout + finetuned.stderr
    assert json.loads(finetuned.stdout)["test"]["rmse"] > 0


def test_a_wrong_server_or_token_is_one_line(serve, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec()))
    nowhere = f"http://127.0.0.1:{free_port()}"
    failed = cli_in_process(
        "submit", str(tmp_path / "spec.yaml"), "--server", nowhere, "--token", "t"
    )
    assert failed.returncode == 2 and "cannot reach the service" in failed.stdout
    assert "Traceback" not in failed.stdout + failed.stderr
    server = serve(f"sqlite:///{tmp_path / 'service.db'}", TAPWEIGHT_EXECUTOR="none")
    refused = cli_in_process("fetch", "0" * 32, "--server", server.url, "--token", "wrong",
                             "--out", str(tmp_path / "out"))  # fmt: skip
    assert refused.returncode == 2 and "refused the token" in refused.stdout
