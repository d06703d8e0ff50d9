"""Per dataset and strategy, the seeds' results summed up: means, spreads, ranks and the
comparison against a reference strategy. Read by the report, the CLI and the service alike."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from harness.paired import PairedDifference
from harness.row import ResultRow
from tapweight.downstream.metrics import HIGHER_IS_BETTER

__all__ = ["Summary", "summarize", "average_ranks", "versus", "versus_headers"]


@dataclass
class Summary:
    dataset: str
    strategy: str
    metric: str
    seeds: int
    weights: list[float]
    continued_pretraining: bool
    valid_mean: float
    valid_std: float
    test_mean: float
    test_std: float
    wall_clock_s: float
    device_seconds: float
    passes: float
    full_trainings: float
    native: dict[str, float]
    pretrain_steps: float = 0.0
    """Continued-pretraining steps the search took (counted; the budget's unspent rest aside)."""
    task_weight: float | None = None
    """The end task's weight in the strategy's own joint training (META-TARTAN), not an
    objective weight: it shows what the method did, though the protocol retrains on objectives."""
    rank: float = 0.0


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[ResultRow]) -> dict[str, list[Summary]]:
    """Per dataset, one summary per strategy over its seeds, ranked by mean test score."""
    groups: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for row in rows:
        groups[(row.dataset, row.strategy)].append(row)
    tables: dict[str, list[Summary]] = defaultdict(list)
    for (dataset, strategy), runs in groups.items():
        valid = [r.retrained.valid_mean for r in runs]
        test = [r.retrained.test_mean for r in runs]
        if len(runs) == 1:  # one seed: the spread over its finetuning seeds
            valid, test = runs[0].retrained.valid, runs[0].retrained.test
        count = len(runs[0].weights)
        task_weights = [r.task_weight for r in runs if r.task_weight is not None]
        tables[dataset].append(
            Summary(
                dataset=dataset,
                strategy=strategy,
                metric=runs[0].metric,
                seeds=len(runs),
                weights=[statistics.mean(r.weights[i] for r in runs) for i in range(count)],
                continued_pretraining=runs[0].continued_pretraining,
                valid_mean=statistics.mean(valid),
                valid_std=_spread(valid),
                test_mean=statistics.mean(test),
                test_std=_spread(test),
                wall_clock_s=statistics.mean(r.cost.wall_clock_s for r in runs),
                device_seconds=statistics.mean(r.cost.device_seconds for r in runs),
                passes=statistics.mean(sum(r.cost.passes.values()) for r in runs),
                full_trainings=statistics.mean(r.cost.full_trainings for r in runs),
                pretrain_steps=statistics.mean(r.cost.pretrain_steps for r in runs),
                task_weight=statistics.mean(task_weights) if task_weights else None,
                native={
                    k: statistics.mean(r.native[k] for r in runs if k in r.native)
                    for k in runs[0].native
                },
            )
        )
    for summaries in tables.values():
        sign = 1 if HIGHER_IS_BETTER[summaries[0].metric] else -1
        summaries.sort(key=lambda s: -sign * s.test_mean)
        scores = [round(s.test_mean, 6) for s in summaries]
        for s in summaries:  # ties share the mean of their positions
            positions = [i + 1 for i, v in enumerate(scores) if v == round(s.test_mean, 6)]
            s.rank = statistics.mean(positions)
    return dict(tables)


def average_ranks(tables: dict[str, list[Summary]]) -> list[tuple[str, float, int]]:
    ranks: dict[str, list[float]] = defaultdict(list)
    for summaries in tables.values():
        for s in summaries:
            ranks[s.strategy].append(s.rank)
    return sorted(
        ((name, statistics.mean(r), len(r)) for name, r in ranks.items()), key=lambda x: x[1]
    )


def versus_headers(reference: str) -> list[str]:
    return [
        "strategy",
        f"{reference} better / no detectable difference / worse",
        "Δ test per dataset [95% CI]",
        "cost ×",
    ]


def versus(
    tables: dict[str, list[Summary]], differences: list[PairedDifference]
) -> list[list[str]]:
    """The reference against every other strategy: per dataset its paired difference with a
    95% interval (+ = the reference better, in each dataset's metric), counted better or worse
    only when the interval excludes 0, and its device seconds over the other's (geometric mean
    over datasets)."""
    device = {
        (d, s.strategy): s.device_seconds for d, summaries in tables.items() for s in summaries
    }
    by_strategy: dict[str, list[PairedDifference]] = defaultdict(list)
    for difference in differences:
        by_strategy[difference.strategy].append(difference)
    rows = []
    for strategy, found in by_strategy.items():
        verdicts = [d.verdict for d in found]
        better, worse = verdicts.count("win"), verdicts.count("loss")
        cells = ", ".join(_difference(d) for d in found)
        cost = statistics.geometric_mean(
            [device[(d.dataset, d.reference)] / max(device[(d.dataset, strategy)], 1e-9)
             for d in found]
        )  # fmt: skip
        counts = f"{better} / {len(found) - better - worse} / {worse}"
        rows.append([strategy, counts, cells, f"{cost:.2f}"])
    return rows


def _difference(difference: PairedDifference) -> str:
    if difference.low is None or difference.high is None:
        return f"{difference.dataset} {difference.mean:+.3f} (1 seed: no interval)"
    return (
        f"{difference.dataset} {difference.mean:+.3f} "
        f"[{difference.low:+.3f}, {difference.high:+.3f}]"
    )
