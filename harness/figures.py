"""The report's figures (matplotlib, headless): scores with error bars, weights per strategy,
weight trajectories, score versus cost, and anytime curves."""

from __future__ import annotations

from pathlib import Path

from harness.row import ResultRow
from harness.summary import Summary
from tapweight.downstream.metrics import HIGHER_IS_BETTER

__all__ = ["draw_figures"]


def draw_figures(
    tables: dict[str, list[Summary]], rows: list[ResultRow], objectives: list[str], out: Path
) -> list[str]:
    """Write the report's PNG figures into ``out``; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn: list[str] = []
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

    seed = rows[0].seed
    traced = {(r.dataset, r.strategy): r for r in rows if r.seed == seed and len(r.trajectory) > 1}
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
                steps = [p.step for p in row.trajectory]
                for k, name in enumerate(objectives):
                    ax.plot(steps, [p.weights[k] for p in row.trajectory], label=name)
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
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])  # > 10 strategies
        for row in (r for r in rows if r.dataset == dataset and r.seed == seed):
            xs, ys = _anytime(row)
            ax.step(xs, ys, where="post", marker=".", label=row.strategy)
        ax.set_xlabel("device seconds")
        ax.set_ylabel(f"best validation {tables[dataset][0].metric} so far")
        ax.set_title(f"{dataset}: anytime (seed {seed})")
        ax.legend(fontsize="x-small")
    _save(fig, out / "anytime.png", drawn)
    return drawn


def _anytime(row: ResultRow) -> tuple[list[float], list[float]]:
    """Best validation so far during the search against cost (spread evenly over its recorded
    steps), then the validation score its weights reach under the protocol, at the full cost."""
    metric = row.metric
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    cost = row.cost
    scale = cost.device_seconds / max(cost.wall_clock_s, 1e-9)
    scored = [p for p in row.trajectory if f"valid_{metric}" in p.metrics]
    xs: list[float] = []
    ys: list[float] = []
    best: float | None = None
    last = max((p.step for p in scored), default=1) or 1
    for point in scored:
        value = point.metrics[f"valid_{metric}"]
        best = value if best is None or sign * value > sign * best else best
        xs.append(cost.search_s * scale * point.step / last)
        ys.append(best)
    xs.append(cost.device_seconds)
    ys.append(row.retrained.valid_mean)
    return xs, ys


def _save(fig, path: Path, drawn: list[str]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    drawn.append(path.stem)
