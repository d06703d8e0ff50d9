"""Several finished jobs compared as one experiment: the chosen jobs (by id, or every job of one
spec) must agree on what they compare against and how each dataset is scored; their results
rows are pooled by seed and summed up by the report's own statistics (:mod:`harness.summary`
for means and ranks, :mod:`harness.paired` for intervals, paired differences and the Friedman
test), never by statistics of the service's own."""

from __future__ import annotations

import json
from collections import defaultdict

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from harness.paired import (
    PairedDifference,
    RankTest,
    mean_interval,
    paired_differences,
    rank_test,
)
from harness.row import ProtocolScores, ResultRow
from harness.spec import parse_spec
from harness.summary import average_ranks, summarize
from service.crud import rows_without_trajectories
from service.models import Job, is_job_id
from service.schemas import (
    ComparedDataset,
    ComparedJob,
    ComparedScore,
    ComparedStrategy,
    Comparison,
)
from tapweight.downstream.metrics import HIGHER_IS_BETTER

__all__ = [
    "MAX_COMPARED_JOBS",
    "UnknownJobs",
    "NotComparable",
    "select_jobs",
    "compare_jobs",
]

MAX_COMPARED_JOBS = 50
SETTINGS_THAT_CHANGE_SCORES = (
    "split", "encoder", "encoder_options", "objectives", "corpus", "max_corpus",
    "budget_pretrain_steps", "budget_wall_clock_s", "protocol",
)  # fmt: skip


class UnknownJobs(LookupError):
    """A job id (or spec) this token has no job of."""


class NotComparable(ValueError):
    """The chosen jobs exist but cannot be compared as they are; the message says why."""


def _named(job: Job) -> str:
    return f"{job.name} ({job.id[:8]})"


def select_jobs(
    session: Session, owner: str, job_ids: list[str], spec: str | None
) -> tuple[list[Job], list[str]]:
    """The finished jobs to compare, oldest first, and notes on what was left out: the jobs
    ``job_ids`` names (every one must be this owner's and finished), or the finished jobs of
    ``spec`` (a spec's name, or its hash)."""
    if spec is not None:
        return _jobs_of_spec(session, owner, spec)
    wanted = list(dict.fromkeys(job_ids))
    ids = [job_id for job_id in wanted if is_job_id(job_id)]
    found = {
        job.id: job
        for job in session.scalars(select(Job).where(Job.owner == owner, Job.id.in_(ids)))
    }
    missing = [job_id for job_id in wanted if job_id not in found]
    if missing:
        shown = ", ".join(repr(job_id[:40]) for job_id in missing)
        raise UnknownJobs(f"no job {shown} for this token")
    unfinished = [found[job_id] for job_id in wanted if not found[job_id].status.final]
    if unfinished:
        shown = ", ".join(f"{_named(job)} is {job.status.value}" for job in unfinished)
        raise NotComparable(
            f"only finished jobs can be compared: {shown}; wait for it or leave it out"
        )
    return sorted(found.values(), key=lambda job: job.created_at), []


def _jobs_of_spec(session: Session, owner: str, spec: str) -> tuple[list[Job], list[str]]:
    query = select(Job).where(Job.owner == owner, or_(Job.name == spec, Job.spec_hash == spec))
    jobs = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id)))
    if not jobs:
        raise UnknownJobs(f"no job of spec {spec[:64]!r} (a spec's name or hash) for this token")
    finished = [job for job in jobs if job.status.final]
    if not finished:
        raise NotComparable(
            f"none of the {len(jobs)} job(s) of spec {spec!r} has finished yet; compare them "
            "once one has"
        )
    notes = []
    if len(finished) < len(jobs):
        notes.append(
            f"{len(jobs) - len(finished)} job(s) of this spec not finished yet are left out"
        )
    if len(finished) > MAX_COMPARED_JOBS:
        notes.append(
            f"the newest {MAX_COMPARED_JOBS} of {len(finished)} finished jobs are compared"
        )
        finished = finished[:MAX_COMPARED_JOBS]
    return finished[::-1], notes


def _common_reference(jobs: list[Job]) -> str | None:
    """The reference strategy all the jobs' specs resolve to (none when no spec has one)."""
    references: dict[str | None, list[Job]] = defaultdict(list)
    for job in jobs:
        references[parse_spec(job.spec, inspect_files=False).reference].append(job)
    if len(references) > 1:
        shown = "; ".join(
            f"{reference or 'none'} in {', '.join(_named(job) for job in members)}"
            for reference, members in references.items()
        )
        raise NotComparable(
            f"the jobs compare against different reference strategies ({shown}); compare jobs "
            "whose specs have the same reference_strategy"
        )
    return next(iter(references))


def _check_metrics(rows_by_job: list[tuple[Job, list[ResultRow]]]) -> None:
    """One metric per dataset: scores of another metric (or direction) cannot be pooled."""
    metrics: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for job, rows in rows_by_job:
        for row in rows:
            metrics[row.dataset][row.metric].add(_named(job))
    for dataset, by_metric in metrics.items():
        if len(by_metric) > 1:
            shown = "; ".join(
                f"{metric} ({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better) in "
                f"{', '.join(sorted(jobs))}"
                for metric, jobs in sorted(by_metric.items())
            )
            raise NotComparable(
                f"dataset {dataset!r} is scored by different metrics ({shown}); its scores "
                "cannot be pooled: compare these jobs apart"
            )


def _pool(rows_by_job: list[tuple[Job, list[ResultRow]]]) -> tuple[list[ResultRow], list[str]]:
    """One row per dataset × strategy × seed: a seed run by several jobs counts once, its
    finetuning scores from every run together (more runs of one seed are not more seeds)."""
    groups: dict[tuple[str, str, int], list[ResultRow]] = defaultdict(list)
    notes = []
    for job, rows in rows_by_job:
        if not rows:
            notes.append(f"job {_named(job)} has no finished trials")
        for row in rows:
            groups[(row.dataset, row.strategy, row.seed)].append(row)
    pooled = []
    for runs in groups.values():
        scores = ProtocolScores(
            metric=runs[0].metric,
            valid=[value for run in runs for value in run.retrained.valid],
            test=[value for run in runs for value in run.retrained.test],
        )
        pooled.append(
            runs[0] if len(runs) == 1 else runs[0].model_copy(update={"retrained": scores})
        )
    repeated = sum(len(runs) > 1 for runs in groups.values())
    if repeated:
        notes.append(
            f"{repeated} trial(s) (dataset × strategy × seed) ran in more than one job: each "
            "seed counts once, with the scores of its runs averaged"
        )
    return pooled, notes


def _settings_notes(jobs: list[Job]) -> list[str]:
    differing = [
        field
        for field in SETTINGS_THAT_CHANGE_SCORES
        if len({json.dumps(job.spec.get(field), sort_keys=True) for job in jobs}) > 1
    ]
    if not differing:
        return []
    return [
        f"the jobs' specs differ in {', '.join(differing)}: scores from different settings are "
        "compared as if from one protocol"
    ]


def compare_jobs(session: Session, jobs: list[Job], notes: list[str]) -> Comparison:
    """The strategies × datasets comparison of ``jobs``' pooled results rows: per cell the mean
    test score over seeds with its 95% interval and rank, the average ranks with the Friedman
    test, and the reference against every other strategy, paired by seed."""
    reference = _common_reference(jobs)
    stored = rows_without_trajectories(session, [job.id for job in jobs])
    rows_by_job = [(job, stored[job.id]) for job in jobs]
    _check_metrics(rows_by_job)
    rows, pooling_notes = _pool(rows_by_job)
    if not rows:
        raise NotComparable("the chosen jobs have no finished trials: there is nothing to compare")
    notes = [*notes, *pooling_notes, *_settings_notes(jobs)]
    tables = summarize(rows)
    per_seed: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        per_seed[(row.dataset, row.strategy)].append(row.retrained.test_mean)
    scores, datasets = [], []
    for dataset, summaries in tables.items():
        best_rank = min(s.rank for s in summaries)
        metric = summaries[0].metric
        datasets.append(
            ComparedDataset(
                name=dataset,
                metric=metric,
                higher_is_better=HIGHER_IS_BETTER[metric],
                best=[s.strategy for s in summaries if s.rank == best_rank],
            )
        )
        for s in summaries:
            low, high = mean_interval(per_seed[(dataset, s.strategy)])
            scores.append(
                ComparedScore(
                    dataset=dataset,
                    strategy=s.strategy,
                    seeds=s.seeds,
                    mean=s.test_mean,
                    low=low,
                    high=high,
                    rank=s.rank,
                )
            )
    averages = average_ranks(tables)
    ranked = rank_test(
        {name: rank for name, rank, _ in averages},
        [{s.strategy: s.rank for s in summaries} for summaries in tables.values()],
    )
    differences = paired_differences(rows, reference) if reference is not None else []
    notes += _statistics_notes(reference, scores, differences, ranked)
    return Comparison(
        jobs=[ComparedJob.model_validate(job) for job in jobs],
        reference=reference,
        datasets=datasets,
        strategies=[
            ComparedStrategy(name=name, average_rank=rank, datasets=count)
            for name, rank, count in averages
        ],
        scores=scores,
        friedman_p_value=ranked.p_value,
        critical_difference=ranked.critical_difference,
        differences=differences,
        notes=notes,
    )


def _statistics_notes(
    reference: str | None,
    scores: list[ComparedScore],
    differences: list[PairedDifference],
    ranked: RankTest,
) -> list[str]:
    """What the pooled results cannot say, and why (as the report says it)."""
    notes = []
    single = [s for s in scores if s.seeds < 2]
    if single:
        notes.append(
            f"{len(single)} of {len(scores)} strategy × dataset cells have one seed: no interval "
            "for them; add jobs of this spec with other seeds"
        )
    if reference is None:
        notes.append(
            "no reference strategy (the specs name no reference_strategy and run no tapweight): "
            "no wins or losses are marked"
        )
    elif not any(s.strategy == reference for s in scores):
        notes.append(f"the reference strategy {reference} has no finished trial in these jobs")
    unpaired = [d for d in differences if d.low is None]
    if unpaired:
        notes.append(
            f"{len(unpaired)} paired difference(s) have fewer than 2 seeds in common with "
            f"{reference}: no win or loss can be told for them"
        )
    if ranked.critical_difference is None:
        notes.append(
            "no Friedman test: it needs at least 2 datasets where all of at least 3 strategies "
            f"ran (here {ranked.datasets} dataset(s), {len(ranked.ranks)} strategies)"
        )
    elif ranked.p_value is None:
        notes.append("Friedman test: every strategy has the same ranks")
    return notes
