"""Fuzz the API from its OpenAPI schema (schemathesis): each operation on its own, then chains of
requests that follow the schema's links from submitted jobs, a finished job and an uploaded
dataset. No 500s, and responses match the documented status codes, content types and schemas
(each event of the event stream included)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import initialize
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from harness.rundir import RunDirectory
from harness.spec import parse_spec
from service import crud
from service.auth import token_digest
from service.db import Database, upgrade
from service.main import create_app
from service.models import Job, JobStatus
from service.ray_jobs import RunInfo, RunState
from service.reconciler import Reconciler
from tests.service.conftest import ALICE, TOKENS, settings_for, tiny_spec

# Module level, as schemathesis' parametrize needs the schema at collection time; the folder
# (SQLite store and runs) is removed when the interpreter exits.
_TMP = tempfile.TemporaryDirectory(prefix="tw-fuzz-")
_SETTINGS = settings_for(f"sqlite:///{_TMP.name}/fuzz.db", Path(_TMP.name))
_APP = create_app(_SETTINGS)
_CONFIG = SchemathesisConfig.from_dict(
    {
        # Through the security scheme, so that negative cases can also leave the token out.
        "auth": {"openapi": {"HTTPBearer": {"bearer": TOKENS[0]}}},
        # Unknown query parameters are ignored, as HTTP APIs commonly do.
        "generation": {"allow-extra-parameters": False},
        # A spec is also checked against the registries (known datasets, encoders, objectives
        # of one domain, budgets a strategy can pay for), which no JSON schema expresses: a
        # schema-valid spec may rightly be refused with 422.
        "checks": {"positive_data_acceptance": {"enabled": False}},
        # An unfinished job's stream never ends: what came in its first half second is checked.
        "operations": [{"include-path": "/jobs/{job_id}/events", "request-timeout": 0.5}],
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_CONFIG)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema_without_server_errors(case):
    case.call_and_validate()


# -- requests chained by the schema's links --------------------------------------------------

FINISHED_SPEC = tiny_spec(name="fuzz-finished")
FINISHED_KEY = "fuzz-finished"
DATASET = "smiles,solubility\nCCO,-0.77\nCCC,-1.94\nCCN,0.41\nc1ccccc1,-1.64\nCO,{}\n"
UPLOADS = itertools.count()
SEEN: Counter[tuple[str, int, str]] = Counter()  # (operation, status, media type) per call


class LocalHarness:
    """Ray's part of the reconciler's work done here: a submitted job runs the real harness to
    the end (``tapweight run --local``), then reads as succeeded or failed."""

    def __init__(self) -> None:
        self.runs: dict[str, subprocess.CompletedProcess[str]] = {}

    def submit(self, submission_id: str, run: RunDirectory, resume: bool) -> None:
        command = [sys.executable, "-m", "tapweight.cli", "run", str(run.input_spec_file),
                   "--out", str(run.path), "--local", "--no-progress"]  # fmt: skip
        self.runs[submission_id] = subprocess.run(command, capture_output=True, text=True)

    def info(self, submission_id: str) -> RunInfo:
        code = self.runs[submission_id].returncode
        return RunInfo(RunState.succeeded if code == 0 else RunState.failed, code)

    def run_error(self, submission_id: str) -> str | None:
        return self.runs[submission_id].stderr[-2000:]

    def stop(self, submission_id: str) -> None:
        pass


@pytest.fixture(scope="module")
def finished_job() -> str:
    """A job of the first token that ran through the harness and that the reconciler stored
    and moved to succeeded; submitting its spec with its Idempotency-Key again names it."""
    database = Database.connect(_SETTINGS.database_url)
    upgrade(database.engine)
    try:
        with database.write() as session:
            owner = token_digest(TOKENS[0])
            spec = parse_spec(FINISHED_SPEC)
            job, _ = crud.create_job(session, owner, spec, FINISHED_KEY, _SETTINGS.runs_dir)
        reconciler = Reconciler(database, _SETTINGS, LocalHarness())  # type: ignore[arg-type]
        reconciler.tick()  # submitted: the harness runs it to the end
        reconciler.tick()  # its rows stored, succeeded
        with database.read() as session:
            stored = session.get(Job, job.id)
            assert stored is not None and stored.status is JobStatus.succeeded, stored.error
            assert len(stored.results) == 2
    finally:
        database.engine.dispose()
    return job.id


Workflow = schema.as_state_machine()


class LinkedRequests(Workflow):  # type: ignore[misc,valid-type]
    """Each scenario starts from what random requests cannot make: a finished job (answered
    to its repeated submission), a queued job and an uploaded dataset; then follows links."""

    @initialize(target=Workflow.bundles["POST /jobs -> 202"])
    def submit_the_finished_job_again(self) -> StepOutput:
        headers = {**ALICE, "Idempotency-Key": FINISHED_KEY}
        return self._request("/jobs", "POST", body=FINISHED_SPEC, headers=headers)

    @initialize(target=Workflow.bundles["POST /jobs -> 202"])
    def submit_a_job(self) -> StepOutput:
        return self._request("/jobs", "POST", body=tiny_spec(name="fuzz-queued"), headers=ALICE)

    @initialize(target=Workflow.bundles["POST /datasets -> 201"])
    def upload_a_dataset(self) -> StepOutput:
        """New bytes each time (201, never 200), so that each scenario starts alike."""
        upload = {"file": DATASET.format(next(UPLOADS)).encode()}
        return self._request("/datasets", "POST", body=upload, headers=ALICE,
                             media_type="multipart/form-data")  # fmt: skip

    def _request(self, path: str, method: str, media_type="application/json", **parts):
        """One request as a root step, recorded as the machine's own are (links follow it)."""
        step = StepInput.initial(schema[path][method].Case(media_type=media_type, **parts))
        self.recorder.record_case(case=step.case)
        self.control.record_step(step, self.recorder)
        return self.step(step)

    def after_call(self, response, case) -> None:
        super().after_call(response, case)
        media_type = response.headers.get("content-type", [""])[0].split(";")[0]
        SEEN[(case.operation.label, response.status_code, media_type)] += 1


def test_linked_requests_conform_to_the_schema_without_server_errors(finished_job):
    LinkedRequests.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=10,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    print("\n".join(f"{n:4d}  {call} {status} {kind}"
                    for (call, status, kind), n in sorted(SEEN.items())))  # fmt: skip


# -- each link followed once ----------------------------------------------------------------

_DOCUMENT = _APP.openapi()
_BY_ID = {
    operation["operationId"]: (path, method, operation)
    for path, methods in _DOCUMENT["paths"].items()
    for method, operation in methods.items()
}


def _value(expression, case, response):
    """A link parameter: ``$response.body#/<pointer>``, ``$request.path.<name>`` or a constant."""
    if not isinstance(expression, str) or not expression.startswith("$"):
        return expression
    if expression.startswith("$request.path."):
        return case.path_parameters[expression.removeprefix("$request.path.")]
    value = response.json()
    for part in expression.removeprefix("$response.body#/").split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _call(case):
    response = case.call()
    case.validate_response(response)
    return response


def _follow(case, response, followed: dict) -> dict:
    """Every link of ``response``, each request validated; the answers by link name."""
    source = _DOCUMENT["paths"][case.operation.path][case.operation.method.lower()]
    answers = {}
    for name, link in source["responses"][str(response.status_code)]["links"].items():
        path, method, target = _BY_ID[link["operationId"]]
        where = {parameter["name"]: parameter["in"] for parameter in target["parameters"]}
        parts: dict[str, dict] = {"path": {}, "query": {}}
        for parameter, expression in link["parameters"].items():
            parts[where[parameter]][parameter] = _value(expression, case, response)
        linked = schema[path][method.upper()].Case(
            path_parameters=parts["path"], query=parts["query"], headers=ALICE
        )
        answers[name] = followed[name] = _call(linked)
    return answers


def _kind(response) -> tuple[int, str]:
    return response.status_code, response.headers["content-type"][0].split(";")[0]


def test_each_link_leads_where_documented_from_a_finished_job(finished_job):
    """Every link of the schema followed once, deterministically: from the finished job to its
    report and figures (200, in their documented types), from its artifacts to a download,
    from the job and dataset lists, and from an upload to the dataset and its deletion."""
    followed: dict = {}
    submit = schema["/jobs"]["POST"].Case(
        body=FINISHED_SPEC, headers={**ALICE, "Idempotency-Key": FINISHED_KEY},
        media_type="application/json",
    )  # fmt: skip
    submitted = _call(submit)
    assert submitted.json() == {**submitted.json(), "id": finished_job, "created": False}
    job = _follow(submit, submitted, followed)
    assert {name: _kind(answer) for name, answer in job.items()} == {
        "GetJob": (200, "application/json"),
        "GetJobResults": (200, "application/json"),
        "StreamJobEvents": (200, "text/event-stream"),
        "GetJobReport": (200, "text/html"),
        "GetJobScoresFigure": (200, "image/png"),
        "ListJobArtifacts": (200, "application/json"),
        "CancelJob": (409, "application/json"),  # a finished job
        "ResumeJob": (409, "application/json"),  # only a failed or cancelled one
    }
    assert job["GetJobScoresFigure"].content.startswith(b"\x89PNG")
    assert b"event: end" in job["StreamJobEvents"].content  # the whole stream, validated
    artifacts = schema["/jobs/{job_id}/artifacts"]["GET"].Case(
        path_parameters={"job_id": finished_job}, headers=ALICE
    )
    (download,) = _follow(artifacts, _call(artifacts), followed).values()
    assert _kind(download) == (200, "application/gzip")
    listed = schema["/jobs"]["GET"].Case(headers=ALICE)
    assert [_kind(a) for a in _follow(listed, _call(listed), followed).values()] == [
        (200, "application/json")
    ]
    upload = schema["/datasets"]["POST"].Case(
        body={"file": DATASET.format("link-walk").encode()}, headers=ALICE,
        media_type="multipart/form-data",
    )  # fmt: skip
    uploaded = _call(upload)
    datasets = schema["/datasets"]["GET"].Case(headers=ALICE)
    _follow(datasets, _call(datasets), followed)
    dataset = _follow(upload, uploaded, followed)
    assert [a.status_code for a in dataset.values()] == [200, 204]  # read, then deleted
    answers = [
        answer for _, _, operation in _BY_ID.values() for answer in operation["responses"].values()
    ]
    assert set(followed) == {name for answer in answers for name in answer.get("links", {})}
