"""API request/response shapes (the request body itself is the harness's ExperimentSpec)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from harness.artifact import ArtifactInfo
from harness.paired import PairedDifference
from service.models import JobStatus


class JobLinks(BaseModel):
    self: str
    events: str
    results: str
    report: str
    artifacts: str
    cancel: str
    dashboard: str

    @classmethod
    def for_job(cls, job_id: str) -> JobLinks:
        base = f"/jobs/{job_id}"
        return cls(
            self=base,
            events=f"{base}/events",
            results=f"{base}/results",
            report=f"{base}/report",
            artifacts=f"{base}/artifacts",
            cancel=f"{base}/cancel",
            dashboard=f"/dashboard/#job={job_id}",
        )


class _WithLinks(BaseModel):
    id: str

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorated property
    @property
    def links(self) -> JobLinks:
        return JobLinks.for_job(self.id)


class JobAccepted(_WithLinks):
    status: JobStatus
    created: bool = Field(description="false when the Idempotency-Key named an earlier job")


class JobSummary(_WithLinks):
    model_config = ConfigDict(from_attributes=True)

    name: str
    status: JobStatus
    cancel_requested: bool
    spec_hash: str
    trials_total: int | None
    trials_done: int
    error: str | None
    attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class StatusChange(BaseModel):
    status: str
    detail: str | None
    at: dt.datetime


class TrialState(BaseModel):
    """Where one trial of a run stands, from the run's events."""

    trial: str = Field(description="<dataset>/<strategy label>/seed<k>")
    dataset: str
    strategy: str = Field(description="the strategy's label in the spec")
    seed: int
    state: Literal["pending", "running", "retrying", "error", "done", "interrupted"] = Field(
        description="interrupted: the job ended (failed or cancelled) before this trial did"
    )
    step: int | None = None
    weights: list[float] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    retries: int = Field(0, description="restarts of this trial after a failure")
    updated: str | None = None


class SeedScore(BaseModel):
    seed: int
    weights: list[float] | None
    valid_mean: float | None
    test_mean: float | None
    cost: dict[str, Any]


class StrategyResult(BaseModel):
    dataset: str
    strategy: str
    metric: str | None
    objective_names: list[str]
    continued_pretraining: bool = Field(description="false for no_cp: its weights are unused")
    higher_is_better: bool = Field(description="the metric's direction (RMSE: false)")
    weights: list[float] | None = Field(description="mean over seeds, one per objective")
    test_mean: float | None
    test_std: float | None = Field(description="sample standard deviation (two seeds or more)")
    valid_mean: float | None
    seeds: list[SeedScore]


class JobDetail(JobSummary):
    spec: dict[str, Any]
    history: list[StatusChange]
    progress: list[TrialState]
    results: list[StrategyResult]
    comparison: list[PairedDifference] = Field(
        description="the reference strategy against each other one, per dataset"
    )
    recommended_artifacts: dict[str, str] = Field(
        default_factory=dict,
        description="per dataset, the artifact with the best validation score "
        "(GET /jobs/{id}/artifacts/{artifact})",
    )


class ComparedJob(BaseModel):
    """A job whose results a comparison pools."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    spec_hash: str
    status: JobStatus
    trials_done: int


class ComparedDataset(BaseModel):
    """A column of the strategies × datasets table."""

    name: str
    metric: str
    higher_is_better: bool = Field(description="the metric's direction (RMSE: false)")
    best: list[str] = Field(description="the strategies with the best mean (more than one: a tie)")


class ComparedStrategy(BaseModel):
    """A row of the table: the strategy's average rank across the datasets it ran on."""

    name: str
    average_rank: float = Field(description="mean over datasets of its rank by mean test score")
    datasets: int


class ComparedScore(BaseModel):
    """One strategy on one dataset: its test score over the pooled seeds."""

    dataset: str
    strategy: str
    seeds: int = Field(description="distinct seeds; a seed run by several jobs counts once")
    mean: float = Field(description="mean over seeds of the protocol's test score")
    low: float | None = Field(
        description="95% interval of the mean (Student's t); none with 1 seed"
    )
    high: float | None
    rank: float = Field(description="rank on this dataset by mean (1 = best; ties share)")


class Comparison(BaseModel):
    """Several finished jobs pooled into one strategies × datasets comparison (the report's
    statistics over all their results rows)."""

    jobs: list[ComparedJob]
    reference: str | None = Field(description="the strategy every other one is paired against")
    datasets: list[ComparedDataset]
    strategies: list[ComparedStrategy] = Field(description="best average rank first")
    scores: list[ComparedScore]
    friedman_p_value: float | None = Field(
        description="Friedman test of the ranks; none below 2 datasets or 3 strategies"
    )
    critical_difference: float | None = Field(
        description="average ranks further apart than this differ at 5% (Nemenyi)"
    )
    differences: list[PairedDifference] = Field(
        description="the reference against each other strategy per dataset, paired by seed"
    )
    notes: list[str] = Field(description="what was pooled and what cannot be computed, and why")


class ArtifactPublic(ArtifactInfo):
    """A trial's encoder and weights, and where to download them."""

    recommended: bool = Field(description="the best validation score of its dataset")
    download: str = Field(description="a .tar.gz of the artifact's folder")


class ArtifactList(BaseModel):
    items: list[ArtifactPublic]
    recommended: dict[str, str] = Field(description="per dataset, the recommended artifact's id")


class DatasetPublic(BaseModel):
    """An uploaded file, as the service read it."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="name it in a spec: {dataset_id: ..., plus the column mapping}")
    filename: str
    format: str = Field(description="csv, tsv, jsonl or lines")
    size_bytes: int
    sha256: str
    rows: int
    columns: list[str]
    created_at: dt.datetime


class DatasetUploaded(DatasetPublic):
    created: bool = Field(description="false when the same bytes were uploaded before")
    inspection: dict[str, Any] | None = Field(
        None,
        description="with a column mapping: tasks or classes, invalid SMILES, label coverage, "
        "split sizes",
    )
    warnings: list[str] = Field(default_factory=list)


class DatasetPage(BaseModel):
    items: list[DatasetPublic]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    executor: Literal["ray", "none"]
    ray: Literal["reachable", "unreachable", "unknown"] | None


class Problem(BaseModel):
    detail: str
