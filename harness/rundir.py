"""The run directory: the one place an experiment's state lives, readable by the CLI and the
service alike.

``spec.yaml`` (the spec as the service submitted it, which ``tapweight run`` reads),
``spec.json`` (normalized spec + hash), ``status.json``, ``events.jsonl`` (appended while
running), ``results.jsonl`` (one row per finished trial), ``searches/`` (results of the Ray Tune
searches of grid and Optuna), ``trials/`` (per-trial logs and TapWeight checkpoints),
``artifacts/`` (per trial: the protocol's continued-pretrained encoder and the learned weights,
``artifact.json``; a ``.tar.gz`` of it once downloaded), ``tune/`` (Ray Tune's own experiment
state, for resume) and ``report/``.
"""

from __future__ import annotations

import fcntl
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.artifact import ArtifactInfo
from harness.row import ResultRow
from harness.spec import ExperimentSpec, parse_spec
from tapweight.errors import ConfigError

__all__ = [
    "RunDirectory",
    "RunStatus",
    "EventType",
    "artifact_id",
    "read_jsonl",
    "split_trial_key",
    "trial_key",
]

EventType = Literal[
    "experiment_started",
    "trial_started",
    "progress",
    "trial_result",
    "trial_error",
    "trial_retry",
    "experiment_finished",
    "experiment_failed",
]
_lock = threading.Lock()


def trial_key(dataset: str, strategy: str, seed: int) -> str:
    return f"{dataset}/{strategy}/seed{seed}"


def split_trial_key(key: str) -> tuple[str, str, int] | None:
    """``(dataset, strategy label, seed)`` of a :func:`trial_key`; None for anything else.
    (Dataset keys hold no '/', a label may.)"""
    dataset, _, rest = key.partition("/")
    strategy, _, seed = rest.rpartition("/")
    if not dataset or not strategy or not seed.startswith("seed") or not seed[4:].isdigit():
        return None
    return dataset, strategy, int(seed[4:])


def artifact_id(key: str) -> str:
    """The name of a trial's artifact: its key made safe as a folder and URL segment."""
    return _slug(key)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


@dataclass(frozen=True)
class RunStatus:
    """``status.json`` as a follower (the service) reads it while the run rewrites it: a field
    that is missing or of another type reads as None instead of failing the whole read."""

    state: str | None
    error: str | None
    trials_total: int | None
    trials_done: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStatus:
        def typed(name: str, kind: type) -> Any:
            value = data.get(name)
            return value if isinstance(value, kind) and not isinstance(value, bool) else None

        return cls(
            state=typed("state", str),
            error=typed("error", str),
            trials_total=typed("trials_total", int),
            trials_done=typed("trials_done", int),
        )


class RunDirectory:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()

    @property
    def input_spec_file(self) -> Path:
        """The spec as submitted, which ``tapweight run`` reads (spec.json is its normal form)."""
        return self.path / "spec.yaml"

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def results_file(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def figures_dir(self) -> Path:
        return self.report_dir / "figures"

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    def search_dir(self, dataset: str, strategy: str, seed: int) -> Path:
        return self.path / "searches" / _slug(trial_key(dataset, strategy, seed))

    def trial_dir(self, key: str) -> Path:
        path = self.path / "trials" / _slug(key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the spec ---------------------------------------------------------------------------
    def write_input_spec(self, spec: dict[str, Any]) -> None:
        """Keep the spec a job was submitted with, once: a resubmission reuses the first one."""
        if self.input_spec_file.exists():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.input_spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))

    def has_spec(self) -> bool:
        """Whether a run started here (``create`` ran), so a new submission must resume it."""
        return self.spec_file.is_file()

    def create(self, spec: ExperimentSpec) -> None:
        """Start a new run here; an existing run of another spec is refused, not overwritten."""
        if self.has_spec():
            if self.spec_hash() != spec.spec_hash():
                raise ConfigError(
                    f"{self.path} holds a run of another spec ({self.spec_hash()}); choose a new "
                    "--out directory"
                )
            raise ConfigError(
                f"{self.path} already holds this experiment; `tapweight resume {self.path}` "
                "continues it"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        payload = {"spec_hash": spec.spec_hash(), **spec.model_dump(mode="json")}
        _atomic_write(self.spec_file, json.dumps(payload, indent=2))

    def spec_hash(self) -> str:
        return json.loads(self.spec_file.read_text())["spec_hash"]

    def load_spec(self) -> ExperimentSpec:
        if not self.has_spec():
            raise ConfigError(f"{self.path} is not a run directory (no spec.json)")
        data = json.loads(self.spec_file.read_text())
        recorded = data.pop("spec_hash", None)
        spec = parse_spec(data, inspect_files=False)  # checked when the run was created
        if recorded != spec.spec_hash():
            raise ConfigError(
                f"{self.spec_file} was edited or comes from another version of the spec "
                f"(hash {recorded}, now {spec.spec_hash()}); refusing to mix results"
            )
        return spec

    # -- progress ---------------------------------------------------------------------------
    def event(self, kind: EventType, trial: str | None = None, **fields: Any) -> None:
        record = {"time": _now(), "type": kind, **({"trial": trial} if trial else {}), **fields}
        with self._locked(), self.events_file.open("a") as stream:
            stream.write(json.dumps(record) + "\n")

    def events(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.events_file)

    def events_from(self, offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(offset after the event, event)`` for each complete event from ``offset`` on, so a
        follower (the service's progress and event stream) reads only what was appended."""
        return read_jsonl(self.events_file, offset)

    def status(self) -> RunStatus | None:
        """The run's status: None before the run wrote one, or when the file cannot be read or
        parsed right now (a reader in another process tries again at its next poll)."""
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        return RunStatus.from_json(data) if isinstance(data, dict) else None

    def set_status(self, state: str, trials_total: int, error: str | None = None) -> None:
        with self._locked():
            self._write_status(state, trials_total, error)

    def mark_failed(self, trials_total: int, message: str) -> None:
        self.set_status("failed", trials_total, message)
        self.event("experiment_failed", error=message)

    def _write_status(self, state: str, trials_total: int, error: str | None) -> None:
        done = len(_read_jsonl(self.results_file))
        status = {
            "state": state,
            "error": error,
            "trials_total": trials_total,
            "trials_done": done,
            "updated": _now(),
        }
        _atomic_write(self.status_file, json.dumps(status, indent=2))

    # -- results ----------------------------------------------------------------------------
    def add_row(self, row: ResultRow) -> bool:
        """Append a trial's row unless that trial already has one (restores never duplicate)."""
        with self._locked():
            if any(r.get("trial") == row.trial for r in _read_jsonl(self.results_file)):
                return False
            with self.results_file.open("a") as stream:
                stream.write(row.model_dump_json() + "\n")
            status = self.status()
            if status is not None and status.state == "running":
                self._write_status("running", status.trials_total or 0, None)  # counts the new row
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Appends and status writes are serialized across threads and processes (the Tune
        driver, the local runner's workers), so lines never interleave and rows never repeat."""
        self.path.mkdir(parents=True, exist_ok=True)
        with _lock, (self.path / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def rows(self) -> list[ResultRow]:
        """The finished trials' rows, in the order they finished."""
        return [ResultRow.model_validate(item) for item in _read_jsonl(self.results_file)]

    def row(self, key: str) -> ResultRow | None:
        """Trial ``key``'s row, or None before it finished."""
        return next((row for row in self.rows() if row.trial == key), None)

    # -- the report -------------------------------------------------------------------------
    def report_path(self, format: Literal["html", "md"]) -> Path:
        """Where the report in ``format`` is written (:func:`harness.report.write_report`)."""
        return self.report_dir / f"report.{format}"

    def report_file(self, format: Literal["html", "md"]) -> Path | None:
        """``report/report.<format>`` once the run wrote it, else None."""
        return _file_inside(self.report_dir, self.report_path(format).name)

    def figure_file(self, name: str) -> Path | None:
        """``report/figures/<name>`` once the run wrote it; None for anything else, including
        names (from a URL) that would leave the folder."""
        return _file_inside(self.figures_dir, name)

    # -- artifacts --------------------------------------------------------------------------
    @property
    def artifacts_dir(self) -> Path:
        return self.path / "artifacts"

    def write_artifact(self, info: ArtifactInfo, encoder: Any, tokenizer: Any = None) -> Path:
        """Keep a trial's encoder (:func:`tapweight.artifacts.save_encoder`) and ``info``;
        a retried trial replaces what its earlier attempt wrote."""
        from tapweight.artifacts import save_encoder

        folder = self.artifacts_dir / info.id
        save_encoder(encoder, folder, tokenizer)
        _atomic_write(folder / "artifact.json", info.model_dump_json(indent=2))
        (self.artifacts_dir / f"{info.id}.tar.gz").unlink(missing_ok=True)
        return folder

    def artifacts(self) -> list[ArtifactInfo]:
        """Every trial's artifact written so far, in trial-name order."""
        if not self.artifacts_dir.is_dir():
            return []
        found = []
        for file in sorted(self.artifacts_dir.glob("*/artifact.json")):
            try:
                found.append(ArtifactInfo.model_validate_json(file.read_text()))
            except (OSError, ValueError):
                continue  # being written; a later read sees it
        return found

    def artifact(self, name: str) -> ArtifactInfo | None:
        """One artifact by its id; None for unknown names, including any that would leave the
        folder."""
        folder = _file_inside(self.artifacts_dir, f"{name}/artifact.json")
        if folder is None:
            return None
        try:
            return ArtifactInfo.model_validate_json(folder.read_text())
        except ValueError:
            return None

    def artifact_archive(self, name: str) -> Path | None:
        """``artifacts/<id>.tar.gz``, the artifact's folder as one download (made on first
        request); None when there is no such artifact."""
        if self.artifact(name) is None:
            return None
        archive = self.artifacts_dir / f"{name}.tar.gz"
        if not archive.is_file():
            partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(self.artifacts_dir / name, arcname=name)
            os.replace(partial, archive)
        return archive

    def log_attempt(self, key: str, what: str) -> None:
        """One line per time a trial function starts: how tests and users count re-runs."""
        with (self.trial_dir(key) / "attempts.log").open("a") as stream:
            stream.write(f"{_now()} {what}\n")

    def attempts(self, key: str) -> list[str]:
        path = self.path / "trials" / _slug(key) / "attempts.log"
        return path.read_text().splitlines() if path.is_file() else []


def _file_inside(folder: Path, name: str) -> Path | None:
    root = folder.resolve()
    path = (root / name).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _slug(key: str) -> str:
    return key.replace("/", "__").replace(":", "-").replace("[", "(").replace("]", ")")


def read_jsonl(path: Path, offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset after the line, object)`` for each complete JSON line from ``offset`` on, so a
    follower reads only what was appended since its last call."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    return  # the writer is still on it (or was killed mid-line)
                offset += len(line)
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    yield offset, item
    except FileNotFoundError:
        return


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [item for _, item in read_jsonl(path)]
