"""A Python client of the job service (``tapweight serve``): upload your data, submit a spec,
follow it, and fetch the report, the results and the recommended encoder.

It speaks HTTP only (httpx) and reads a spec as plain YAML/JSON: nothing of the harness or the
service is imported, so it stays in the lowest layer. Every failure is one
:class:`ClientError` line: a server that cannot be reached, a token it refuses, a spec it
rejects (with the fields it names).

Example:
    >>> client = Client("http://127.0.0.1:8000", token="my-token")  # doctest: +SKIP
    >>> job = client.submit("my_assay.yaml")  # uploads the files the spec names
    >>> client.wait(job)["status"]
    'succeeded'
    >>> client.fetch(job, "out/")  # report, results and the recommended encoder
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tapweight.errors import TapWeightError

__all__ = ["Client", "ClientError", "TOKEN_ENV", "FINAL_STATUSES"]

TOKEN_ENV = "TAPWEIGHT_TOKEN"
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
_MAPPING_FIELDS = ("smiles_column", "label_columns", "task_type", "text_column", "label_column")


class ClientError(TapWeightError):
    """The service could not be reached, or refused a request (its message, in one line)."""


class Client:
    """The service's verbs: datasets, jobs, events, artifacts.

    Args:
        server: the service's URL, e.g. ``http://127.0.0.1:8000``.
        token: a bearer token of ``TAPWEIGHT_API_TOKENS``; default ``$TAPWEIGHT_TOKEN``.
        timeout: seconds per request (event streams wait as long as the job runs).
    """

    def __init__(self, server: str, token: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise ClientError(f"no token: pass --token or set {TOKEN_ENV}")
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any):
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ClientError(
                f"cannot reach the service at {self.server} ({type(error).__name__}: "
                f"{error}); check --server and that `tapweight serve` runs there"
            ) from None
        if response.status_code not in expect:
            raise ClientError(_problem(response, method, path))
        return response

    def _json(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any):
        return self._request(method, path, expect, **kwargs).json()

    # -- datasets -----------------------------------------------------------------------------
    def upload_dataset(
        self, path: str | os.PathLike[str], mapping: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Upload a file (POST /datasets); with a column mapping the answer says what a run
        sees (tasks, invalid SMILES, split sizes). The same bytes twice give one dataset."""
        file = Path(path)
        if not file.is_file():
            raise ClientError(f"dataset file {str(file)!r} does not exist")
        fields = {}
        for key, value in (mapping or {}).items():
            if value is not None and key != "path":
                fields[key] = ",".join(value) if isinstance(value, list) else str(value)
        with file.open("rb") as handle:
            return self._json(
                "POST", "/datasets", (200, 201), files={"file": (file.name, handle)}, data=fields
            )

    def datasets(self) -> list[dict[str, Any]]:
        return self._json("GET", "/datasets", params={"limit": 200})["items"]

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/datasets/{dataset_id}", (204,))

    # -- jobs ---------------------------------------------------------------------------------
    def upload_spec_datasets(
        self, spec: dict[str, Any], base: Path | None = None
    ) -> dict[str, Any]:
        """The spec with each dataset mapping's local ``path`` uploaded and replaced by its
        ``dataset_id`` (relative paths: from ``base``, else the current folder)."""
        datasets = spec.get("datasets")
        if not isinstance(datasets, list):
            return spec
        changed = []
        for entry in datasets:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                file = Path(entry["path"]).expanduser()
                if not file.is_absolute() and base is not None and (base / file).exists():
                    file = base / file
                mapping = {k: v for k, v in entry.items() if k in (*_MAPPING_FIELDS, "split")}
                uploaded = self.upload_dataset(file, mapping)
                entry = {k: v for k, v in entry.items() if k != "path"}
                entry["dataset_id"] = uploaded["id"]
            changed.append(entry)
        return {**spec, "datasets": changed}

    def submit(self, spec: dict[str, Any] | str | os.PathLike[str]) -> str:
        """Upload the spec's own files, post the job; its id."""
        base = None
        if not isinstance(spec, dict):
            base = Path(spec).parent
            spec = _read_spec(Path(spec))
        body = self.upload_spec_datasets(spec, base)
        return self._json("POST", "/jobs", (202,), json=body)["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def results(self, job_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/jobs/{job_id}/results")

    def report(self, job_id: str, format: str = "md") -> str:
        return self._request("GET", f"/jobs/{job_id}/report", params={"format": format}).text

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(event type, data)`` of the job's event stream until it ends."""
        import httpx

        kind = "message"
        try:
            with self._http.stream("GET", f"/jobs/{job_id}/events", timeout=None) as response:
                if response.status_code != 200:
                    response.read()
                    raise ClientError(_problem(response, "GET", f"/jobs/{job_id}/events"))
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line.removeprefix("event:").strip()
                    elif line.startswith("data:"):
                        try:
                            data = json.loads(line.removeprefix("data:").strip())
                        except ValueError:
                            data = {}
                        yield kind, data if isinstance(data, dict) else {}
        except httpx.HTTPError as error:
            raise ClientError(f"the event stream of job {job_id} broke off ({error})") from None

    def wait(
        self, job_id: str, on_event: Callable[[str, dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Follow the job's events until it ends (``on_event`` sees each); its final state."""
        for kind, data in self.events(job_id):
            if on_event is not None:
                on_event(kind, data)
            if kind == "end":
                break
        for _ in range(30):  # the stream ends with the status; the detail may lag a poll
            job = self.job(job_id)
            if job["status"] in FINAL_STATUSES:
                return job
            time.sleep(1)
        return self.job(job_id)

    # -- artifacts ----------------------------------------------------------------------------
    def artifacts(self, job_id: str) -> dict[str, Any]:
        """``{"items": [...], "recommended": {dataset: artifact id}}``."""
        return self._json("GET", f"/jobs/{job_id}/artifacts")

    def download_artifact(self, job_id: str, artifact_id: str, out: str | os.PathLike[str]) -> Path:
        """Download and unpack one artifact into ``out``; the unpacked folder (load it with
        ``tapweight finetune --encoder FOLDER``)."""
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        archive = target / f"{artifact_id}.tar.gz"
        archive.write_bytes(self._request("GET", f"/jobs/{job_id}/artifacts/{artifact_id}").content)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
        return target / artifact_id

    def fetch(self, job_id: str, out: str | os.PathLike[str]) -> dict[str, Path]:
        """The report (Markdown and HTML), the results rows and the recommended encoder of each
        dataset, written into ``out``; what was written where."""
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for fmt in ("md", "html"):
            path = target / f"report.{fmt}"
            path.write_text(self.report(job_id, fmt))
            written[f"report.{fmt}"] = path
        results = target / "results.json"
        results.write_text(json.dumps(self.results(job_id), indent=2))
        written["results"] = results
        for dataset, artifact in self.artifacts(job_id)["recommended"].items():
            written[f"encoder:{dataset}"] = self.download_artifact(
                job_id, artifact, target / "encoders"
            )
        return written


def _read_spec(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ClientError(f"spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ClientError(f"{path} is not valid YAML/JSON: {error}") from None
    if not isinstance(data, dict):
        raise ClientError(f"{path}: an experiment spec is a mapping")
    return data


def _problem(response: Any, method: str, path: str) -> str:
    """The service's answer as one line: its detail, with each field it names."""
    if response.status_code == 401:
        return f"the service refused the token (401); check --token or {TOKEN_ENV}"
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):
        parts = []
        for item in detail:
            loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        detail = "; ".join(parts)
    shown = detail or response.text[:200] or response.reason_phrase
    return f"{method} {path}: {response.status_code} {shown}"
