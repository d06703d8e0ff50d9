"""``tapweight report DIR``: the comparison of strategies, from ``results.jsonl`` alone.

Per dataset a table (weights, the end-task weight of strategies that train on the end task,
validation and test mean ± std over seeds, cost, rank by test), the average rank across
datasets, and figures: scores with error bars, weights per strategy, λ trajectories, score
versus cost, and anytime curves (best validation so far versus cost).
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.rundir import RunDirectory
from tapweight.downstream.metrics import HIGHER_IS_BETTER
from tapweight.errors import ConfigError

__all__ = ["write_report", "summarize", "average_ranks", "versus", "Summary"]


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

    def cells(self, objectives: list[str]) -> list[str]:
        weights = " / ".join(f"{w:.2f}" for w in self.weights)
        return [
            self.strategy,
            weights if self.continued_pretraining else "– (no continued pretraining)",
            "–" if self.task_weight is None else f"{self.task_weight:.2f}",
            f"{self.valid_mean:.3f} ± {self.valid_std:.3f}",
            f"{self.test_mean:.3f} ± {self.test_std:.3f}",
            f"{self.wall_clock_s:.0f}",
            f"{self.device_seconds:.0f}",
            f"{self.pretrain_steps:.0f}",
            f"{self.passes:.0f}",
            f"{self.full_trainings:.0f}",
            f"{self.rank:g}",
        ]


HEADERS = [
    "strategy", "weights", "task weight", "valid", "test", "wall s", "device s", "search steps",
    "passes", "trainings", "rank",
]  # fmt: skip


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict[str, Any]]) -> dict[str, list[Summary]]:
    """Per dataset, one summary per strategy over its seeds, ranked by mean test score."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["strategy"])].append(row)
    tables: dict[str, list[Summary]] = defaultdict(list)
    for (dataset, strategy), runs in groups.items():
        valid = [r["retrained"]["valid_mean"] for r in runs]
        test = [r["retrained"]["test_mean"] for r in runs]
        if len(runs) == 1:  # one seed: the spread over its finetuning seeds
            valid, test = runs[0]["retrained"]["valid"], runs[0]["retrained"]["test"]
        count = len(runs[0]["weights"])
        task_weights = [r["task_weight"] for r in runs if r.get("task_weight") is not None]
        tables[dataset].append(
            Summary(
                dataset=dataset,
                strategy=strategy,
                metric=runs[0]["retrained"]["metric"],
                seeds=len(runs),
                weights=[statistics.mean(r["weights"][i] for r in runs) for i in range(count)],
                continued_pretraining=runs[0].get("continued_pretraining", True),
                valid_mean=statistics.mean(valid),
                valid_std=_spread(valid),
                test_mean=statistics.mean(test),
                test_std=_spread(test),
                wall_clock_s=statistics.mean(r["cost"]["wall_clock_s"] for r in runs),
                device_seconds=statistics.mean(r["cost"]["device_seconds"] for r in runs),
                passes=statistics.mean(sum(r["cost"]["passes"].values()) for r in runs),
                full_trainings=statistics.mean(r["cost"]["full_trainings"] for r in runs),
                pretrain_steps=statistics.mean(r["cost"].get("pretrain_steps", 0) for r in runs),
                task_weight=statistics.mean(task_weights) if task_weights else None,
                native={
                    k: statistics.mean(r["native"][k] for r in runs if k in r["native"])
                    for k in runs[0]["native"]
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


VERSUS_HEADERS = ["strategy", "TapWeight wins / ties / losses", "Δ test per dataset", "cost ×"]


def versus(tables: dict[str, list[Summary]], reference: str = "tapweight") -> list[list[str]]:
    """``reference`` against every other strategy: where its mean test score is better, the
    signed differences (+ = ``reference`` better, in each dataset's metric) and its device
    seconds over the other's (geometric mean over datasets). Empty without ``reference``."""
    mine = {d: s for d, summaries in tables.items() for s in summaries if s.strategy == reference}
    others: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for dataset, summaries in tables.items():
        if dataset not in mine:
            continue
        sign = 1 if HIGHER_IS_BETTER[summaries[0].metric] else -1
        for s in summaries:
            if s.strategy != reference:
                delta = sign * (mine[dataset].test_mean - s.test_mean) + 0.0  # no -0.000
                ratio = mine[dataset].device_seconds / max(s.device_seconds, 1e-9)
                others[s.strategy].append((dataset, delta, ratio))
    rows = []
    for strategy, results in others.items():
        wins = sum(delta > 1e-6 for _, delta, _ in results)
        losses = sum(delta < -1e-6 for _, delta, _ in results)
        deltas = ", ".join(f"{dataset} {delta:+.3f}" for dataset, delta, _ in results)
        cost = statistics.geometric_mean([ratio for _, _, ratio in results])
        rows.append([strategy, f"{wins} / {len(results) - wins - losses} / {losses}", deltas,
                     f"{cost:.2f}"])  # fmt: skip
    return rows


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(run: RunDirectory | str | Path) -> Path:
    """Write ``report/report.md``, ``report/report.html`` and ``report/figures/*.png``."""
    run_dir = run if isinstance(run, RunDirectory) else RunDirectory(run)
    spec = run_dir.load_spec()
    rows = run_dir.rows()
    if not rows:
        raise ConfigError(f"{run_dir.path} has no finished trials yet; nothing to report")
    tables = summarize(rows)
    figures_dir = run_dir.report_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = _draw(tables, rows, spec.objectives, figures_dir)
    expected = len(spec.datasets) * len(spec.strategies) * len(spec.seeds)
    intro = (
        f"Experiment **{spec.name}** (spec {spec.spec_hash()}): encoder `{spec.encoder}`, "
        f"objectives {', '.join(spec.objectives)} (weights in that order), seeds "
        f"{spec.seeds}, {len(rows)} of {expected} trials. Every strategy's weights went through "
        f"one protocol: {spec.protocol.pretrain.steps} continued-pretraining steps from the same "
        f"start, {spec.protocol.finetune.epochs} finetuning epochs × "
        f"{spec.protocol.finetune_seeds} finetuning seed(s), epoch chosen on validation, test "
        "read once per run. Mean ± std over seeds; rank by mean test score. Cost covers the "
        "strategy's search plus the protocol; device s = wall s × devices held. Task weight: "
        "the end task's own weight in a strategy's joint training (META-TARTAN), not an "
        "objective weight; the protocol retrains on the objective weights alone."
    )
    md = [f"# {spec.name}", "", intro, ""]
    page = [f"<h1>{html.escape(spec.name)}</h1>", f"<p>{html.escape(intro)}</p>"]
    for dataset, summaries in tables.items():
        metric = summaries[0].metric
        cells = [s.cells(spec.objectives) for s in summaries]
        title = f"{dataset} ({metric})"
        md += [f"## {title}", "", _markdown_table(HEADERS, cells), ""]
        page += [f"<h2>{html.escape(title)}</h2>", _html_table(HEADERS, cells)]
        native = [
            [s.strategy, ", ".join(f"{k} {v:.3f}" for k, v in s.native.items()) or "–"]
            for s in summaries
        ]
        native_table = _markdown_table(["strategy", "native"], native)
        md += ["Native end scores (each method's own model):", "", native_table, ""]
        page += ["<p>Native end scores:</p>", _html_table(["strategy", "native"], native)]
    ranks = [[name, f"{rank:.2f}", str(n)] for name, rank, n in average_ranks(tables)]
    rank_headers = ["strategy", "rank", "datasets"]
    md += ["## Average rank across datasets", "", _markdown_table(rank_headers, ranks), ""]
    page += ["<h2>Average rank across datasets</h2>", _html_table(rank_headers, ranks)]
    if against := versus(tables):
        title = "TapWeight against each strategy"
        explain = (
            "Δ test = TapWeight's mean test score minus the strategy's (+ = TapWeight better, "
            "in the dataset's metric); cost × = TapWeight's device seconds over the strategy's "
            "(geometric mean over datasets)."
        )
        md += [f"## {title}", "", explain, "", _markdown_table(VERSUS_HEADERS, against), ""]
        page += [f"<h2>{title}</h2>", f"<p>{html.escape(explain)}</p>",
                 _html_table(VERSUS_HEADERS, against)]  # fmt: skip
    md += ["## Figures", ""] + [f"![{name}](figures/{name}.png)" for name in figures]
    page += ["<h2>Figures</h2>"] + [
        f'<figure><img src="figures/{n}.png" alt="{n}"><figcaption>{n}</figcaption></figure>'
        for n in figures
    ]
    (run_dir.report_dir / "report.md").write_text("\n".join(md) + "\n")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}"
        "img{max-width:100%}"
    )
    (run_dir.report_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)}"
        f"</title><style>{style}</style></head><body>{''.join(page)}</body></html>"
    )
    return run_dir.report_dir / "report.md"


def _draw(tables, rows, objectives: list[str], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    datasets = list(tables)
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        summaries = tables[dataset]
        x = range(len(summaries))
        ax.bar(
            [i - 0.2 for i in x], [s.valid_mean for s in summaries], 0.4,
            yerr=[s.valid_std for s in summaries], capsize=3, label="validation",
        )  # fmt: skip
        ax.bar(
            [i + 0.2 for i in x], [s.test_mean for s in summaries], 0.4,
            yerr=[s.test_std for s in summaries], capsize=3, label="test",
        )  # fmt: skip
        ax.set_xticks(list(x), [s.strategy for s in summaries], rotation=45, ha="right")
        ax.set_title(f"{dataset}: {summaries[0].metric}")
        low = min(min(s.valid_mean, s.test_mean) for s in summaries)
        high = max(max(s.valid_mean, s.test_mean) for s in summaries)
        ax.set_ylim(low - 0.1 * (high - low + 1e-3) - 0.02, high + 0.1 * (high - low + 1e-3) + 0.02)
        ax.legend()
    _save(fig, out / "scores.png", drawn)

    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        summaries = [s for s in tables[dataset] if s.continued_pretraining]
        left = [0.0] * len(summaries)
        for i, name in enumerate(objectives):
            widths = [s.weights[i] for s in summaries]
            ax.barh([s.strategy for s in summaries], widths, left=left, label=name)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_xlim(0, 1)
        ax.set_title(f"{dataset}: learned weights (mean over seeds)")
        ax.legend(loc="lower right", fontsize="small")
    _save(fig, out / "weights.png", drawn)

    seed = rows[0]["seed"]
    traced = {
        (r["dataset"], r["strategy"]): r
        for r in rows
        if r["seed"] == seed and len(r.get("trajectory", [])) > 1
    }
    searched = list(dict.fromkeys(strategy for _, strategy in traced))
    if traced:  # one row of panels per dataset, one column per strategy that searched
        fig, axes = plt.subplots(
            len(datasets), len(searched), figsize=(4 * len(searched), 3.5 * len(datasets)),
            squeeze=False,
        )  # fmt: skip
        for i, dataset in enumerate(datasets):
            axes[i][0].set_ylabel("weight")
            for j, strategy in enumerate(searched):
                ax, row = axes[i][j], traced.get((dataset, strategy))
                if row is None:
                    ax.axis("off")
                    continue
                steps = [p["step"] for p in row["trajectory"]]
                for k, name in enumerate(objectives):
                    ax.plot(steps, [p["weights"][k] for p in row["trajectory"]], label=name)
                ax.set_title(f"{dataset}: {strategy} (seed {seed})", fontsize="small")
                ax.set_xlabel("step / trial")
                ax.set_ylim(0, 1)
        dataset, strategy = next(iter(traced))  # the legend on one drawn panel
        axes[datasets.index(dataset)][searched.index(strategy)].legend(fontsize="small")
        _save(fig, out / "trajectories.png", drawn)

    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for s in tables[dataset]:
            ax.errorbar(s.device_seconds, s.test_mean, yerr=s.test_std, fmt="o", capsize=3)
            ax.annotate(s.strategy, (s.device_seconds, s.test_mean), fontsize="small")
        ax.set_xscale("log")
        ax.set_xlabel("device seconds (search + protocol)")
        ax.set_ylabel(f"test {tables[dataset][0].metric}")
        ax.set_title(f"{dataset}: score vs cost")
    _save(fig, out / "score_vs_cost.png", drawn)

    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # more strategies than the default 10
        for row in (r for r in rows if r["dataset"] == dataset and r["seed"] == rows[0]["seed"]):
            xs, ys = _anytime(row)
            ax.step(xs, ys, where="post", marker=".", label=row["strategy"])
        ax.set_xlabel("device seconds")
        ax.set_ylabel(f"best validation {tables[dataset][0].metric} so far")
        ax.set_title(f"{dataset}: anytime (seed {rows[0]['seed']})")
        ax.legend(fontsize="x-small")
    _save(fig, out / "anytime.png", drawn)
    return drawn


def _anytime(row: dict) -> tuple[list[float], list[float]]:
    """Best validation so far during the search against cost (spread evenly over its recorded
    steps), then the validation score its weights reach under the protocol, at the full cost."""
    metric = row["retrained"]["metric"]
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    cost = row["cost"]
    scale = cost["device_seconds"] / max(cost["wall_clock_s"], 1e-9)
    scored = [p for p in row.get("trajectory", []) if f"valid_{metric}" in p["metrics"]]
    xs, ys, best = [], [], None
    last = max((p["step"] for p in scored), default=1) or 1
    for point in scored:
        value = point["metrics"][f"valid_{metric}"]
        best = value if best is None or sign * value > sign * best else best
        xs.append(cost["search_s"] * scale * point["step"] / last)
        ys.append(best)
    final = row["retrained"]["valid_mean"]
    xs.append(cost["device_seconds"])
    ys.append(final)
    return xs, ys


def _save(fig, path: Path, drawn: list[str]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    drawn.append(path.stem)
