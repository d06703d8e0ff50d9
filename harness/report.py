"""``tapweight report DIR``: the comparison of strategies, from ``results.jsonl`` alone.

Per dataset a table (weights, the end-task weight of strategies that train on the end task,
validation and test mean ± std over seeds, cost, rank by test), the average rank across
datasets, the reference strategy against each other one, and the figures
(:mod:`harness.figures`), as Markdown and HTML.
"""

from __future__ import annotations

import html
from pathlib import Path

from harness.figures import draw_figures
from harness.paired import (
    detectable_effects,
    draw_critical_difference,
    half_width,
    paired_differences,
    rank_test,
)
from harness.rundir import RunDirectory
from harness.summary import Summary, average_ranks, summarize, versus, versus_headers
from tapweight.errors import ConfigError

__all__ = ["write_report", "summary_cells", "HEADERS"]

HEADERS = [
    "strategy", "weights", "task weight", "valid", "test", "test 95% CI", "wall s", "device s",
    "search steps", "passes", "trainings", "rank",
]  # fmt: skip


def summary_cells(s: Summary) -> list[str]:
    """One table row of a summary, formatted."""
    weights = " / ".join(f"{w:.2f}" for w in s.weights)
    return [
        s.strategy,
        weights if s.continued_pretraining else "– (no continued pretraining)",
        "–" if s.task_weight is None else f"{s.task_weight:.2f}",
        f"{s.valid_mean:.3f} ± {s.valid_std:.3f}",
        f"{s.test_mean:.3f} ± {s.test_std:.3f}",
        _test_interval(s),
        f"{s.wall_clock_s:.0f}",
        f"{s.device_seconds:.0f}",
        f"{s.pretrain_steps:.0f}",
        f"{s.passes:.0f}",
        f"{s.full_trainings:.0f}",
        f"{s.rank:g}",
    ]


def _test_interval(s: Summary) -> str:
    """The 95% interval of the mean test score over seeds; none from one seed."""
    if s.seeds < 2:
        return "–"
    half = half_width(s.test_std, s.seeds)
    return f"[{s.test_mean - half:.3f}, {s.test_mean + half:.3f}]"


def _second(item: tuple[str, float]) -> float:
    return item[1]


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
    figures_dir = run_dir.figures_dir
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(tables, rows, spec.objectives, figures_dir)
    expected = len(spec.datasets) * len(spec.strategies) * len(spec.seeds)
    intro = (
        f"Experiment **{spec.name}** (spec {spec.spec_hash()}): encoder `{spec.encoder}`, "
        f"objectives {', '.join(spec.objectives)} (weights in that order), seeds "
        f"{spec.seeds}, {len(rows)} of {expected} trials. Every strategy's weights went through "
        f"one protocol: {spec.protocol.pretrain.steps} continued-pretraining steps from the same "
        f"start, {spec.protocol.finetune.epochs} finetuning epochs × "
        f"{spec.protocol.finetune_seeds} finetuning seed(s), epoch chosen on validation, test "
        "read once per run. Mean ± std over seeds, and the mean's 95% interval (Student's t); "
        "rank by mean test score. Cost covers the strategy's search plus the protocol; device "
        "s = wall s × devices held. Task weight: the end task's own weight in a strategy's "
        "joint training (META-TARTAN), not an objective weight; the protocol retrains on the "
        "objective weights alone."
    )
    md = [f"# {spec.name}", "", intro, ""]
    page = [f"<h1>{html.escape(spec.name)}</h1>", f"<p>{html.escape(intro)}</p>"]
    for dataset, summaries in tables.items():
        metric = summaries[0].metric
        cells = [summary_cells(s) for s in summaries]
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
    ranked = rank_test(
        {name: rank for name, rank, _ in average_ranks(tables)},
        [{s.strategy: s.rank for s in summaries} for summaries in tables.values()],
    )
    ranks = [[name, f"{rank:.2f}"] for name, rank in sorted(ranked.ranks.items(), key=_second)]
    if draw_critical_difference(ranked, run_dir.figures_dir / "critical_difference.png"):
        figures.insert(0, "critical_difference")
        explain = (
            f"Friedman test over {ranked.datasets} datasets: p = {ranked.p_value:.3g}; average "
            f"ranks further apart than the critical difference {ranked.critical_difference:.2f} "
            "(Nemenyi, 5%) differ; strategies joined by a bar in the diagram do not."
            if ranked.p_value is not None
            else "Friedman test: every strategy has the same ranks."
        )
    else:
        explain = (
            f"No Friedman test: it needs at least 2 datasets where all of at least 3 strategies "
            f"ran (here {ranked.datasets} dataset(s), {len(ranked.ranks)} strategies)."
        )
    rank_headers = ["strategy", "average rank"]
    md += ["## Average rank across datasets", "", explain, "", _markdown_table(rank_headers, ranks)]
    md += [""]
    page += ["<h2>Average rank across datasets</h2>", f"<p>{html.escape(explain)}</p>",
             _html_table(rank_headers, ranks)]  # fmt: skip
    warnings = [
        f"{e.dataset}: the largest difference between strategies ({e.largest_seen:.3f} "
        f"{e.metric}) is below the smallest this protocol detects over {e.seeds} seeds "
        f"({e.minimum:.3f}, 80% power at 5%); more seeds or a longer protocol are needed to "
        "tell these strategies apart."
        if e.minimum is not None
        else f"{e.dataset}: fewer than 2 common seeds; no difference can be tested."
        for e in detectable_effects(rows)
        if not e.separates
    ]
    if warnings:
        md += ["## What this protocol cannot tell apart", ""] + [f"- {w}" for w in warnings]
        md += [""]
        page += ["<h2>What this protocol cannot tell apart</h2>"]
        page += ["<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>"]
    reference = spec.reference
    differences = paired_differences(rows, reference) if reference is not None else []
    if reference is not None and (against := versus(tables, differences)):
        title = f"{reference} against each strategy"
        explain = (
            f"Δ test = {reference}'s test score minus the strategy's on the same seed (+ = "
            f"{reference} better, in the dataset's metric), mean over common seeds with a 95% "
            "interval (Student's t; the paired t-test suits 3–10 seeds, where the exact "
            "Wilcoxon test cannot reach p < 0.05 below 6 pairs). Better or worse only when the "
            f"interval excludes 0. Cost × = {reference}'s device seconds over the strategy's "
            "(geometric mean over datasets)."
        )
        headers = versus_headers(reference)
        md += [f"## {title}", "", explain, "", _markdown_table(headers, against), ""]
        page += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(explain)}</p>",
                 _html_table(headers, against)]  # fmt: skip
    md += ["## Figures", ""] + [f"![{name}](figures/{name}.png)" for name in figures]
    page += ["<h2>Figures</h2>"] + [
        f'<figure><img src="figures/{n}.png" alt="{n}"><figcaption>{n}</figcaption></figure>'
        for n in figures
    ]
    run_dir.report_path("md").write_text("\n".join(md) + "\n")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}"
        "img{max-width:100%}"
    )
    run_dir.report_path("html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)}"
        f"</title><style>{style}</style></head><body>{''.join(page)}</body></html>"
    )
    return run_dir.report_path("md")
