"""Strategy comparison through the harness: run (or read) an experiment, record its report.

    python bench/harness_comparison.py examples/bbbp_all_strategies.yaml --out runs/bbbp-all
    python bench/harness_comparison.py SPEC --out DIR --local --workers 8   # no Ray (one GPU box)
    python bench/harness_comparison.py --from-run runs/bbbp-all        # record a finished run

The tables are the harness's own report (one protocol for every strategy, test read once per
run); the wall time is the experiment's, from its event log. Needs TAPWEIGHT_DATA_DIR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS as ROOT_RESULTS  # noqa: E402
from record import record  # noqa: E402


def _wall_seconds(events: list[dict]) -> float:
    """Time between the first start and the finish (a resumed run counts its pause, too)."""
    times = [dt.datetime.fromisoformat(e["time"]) for e in events]
    return (max(times) - min(times)).total_seconds()


def _tune_searches(run, spec) -> dict[str, float]:
    """Mean device seconds of each trial search (grid, Optuna) run as Ray Tune trials, from its
    saved result."""
    from baselines import TrialSearch, strategy_class
    from tapweight.result import WeightingResult

    searches = {}
    for entry in (e for e in spec.strategies if issubclass(strategy_class(e.name), TrialSearch)):
        seconds = [
            WeightingResult.load(run.search_dir(dataset, entry.label, seed)).cost.wall_clock_s
            for dataset in spec.dataset_names
            for seed in spec.seeds
        ]
        searches[entry.label] = sum(seconds) / len(seconds)
    return searches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", nargs="?", help="experiment spec to run")
    parser.add_argument("--out", type=Path, help="run directory for SPEC")
    parser.add_argument("--from-run", type=Path, help="record an already finished run")
    parser.add_argument("--local", action="store_true", help="run without Ray (harness.local)")
    parser.add_argument("--workers", type=int, default=1, help="with --local: trials at a time")
    args = parser.parse_args()
    from harness.report import write_report
    from harness.rundir import RunDirectory
    from harness.spec import load_spec
    from harness.summary import average_ranks, summarize

    if args.from_run:
        run = RunDirectory(args.from_run)
    elif args.spec and args.out and args.local:
        from harness.local import run_local

        run = run_local(load_spec(args.spec), args.out, progress=False, workers=args.workers)
    elif args.spec and args.out:
        from harness.runner import run_experiment

        run = run_experiment(load_spec(args.spec), args.out, progress=False)
    else:
        parser.error("give SPEC --out DIR, or --from-run DIR")
    spec = run.load_spec()
    unfinished = run.status().state != "finished"
    if unfinished and not run.rows():
        sys.exit(f"{run.path} has no finished trial ({run.status().state})")
    write_report(run)
    tables = summarize(run.rows())
    wall = _wall_seconds(run.events())
    body = run.report_path("md").read_text()
    body = body.split("\n", 2)[2]  # drop the report's own title
    body = body.split("## Figures")[0].strip()
    shown = ROOT_RESULTS / "figures" / spec.name  # the report's PNGs, kept beside the JSON
    shown.mkdir(parents=True, exist_ok=True)
    links = []
    for png in sorted((run.report_dir / "figures").glob("*.png")):
        shutil.copyfile(png, shown / png.name)
        links.append(f"![{png.stem}](bench/results/figures/{spec.name}/{png.name})")
    figures = {
        dataset: [
            {
                "strategy": s.strategy, "weights": s.weights, "valid": [s.valid_mean, s.valid_std],
                "native_valid": next(
                    (v for k, v in s.native.items() if k.startswith("valid_")), None
                ),
                "test": [s.test_mean, s.test_std], "device_seconds": s.device_seconds,
                "rank": s.rank,
            }
            for s in summaries
        ]
        for dataset, summaries in tables.items()
    }  # fmt: skip
    figures["average_rank"] = average_ranks(tables)
    figures["wall_clock_s"] = wall
    local = "ray" not in run.rows()[0].versions
    searches = {} if local else _tune_searches(run, spec)
    figures["tune_search_s"] = searches
    how = (
        f"the local runner, {args.workers} worker process(es) sharing this machine"
        if local
        else f"Ray Tune on this machine, {spec.resources.cpu:g} CPU per trial"
    )
    total = len(spec.datasets) * len(spec.strategies) * len(spec.seeds)
    note = (
        f"**Unfinished run: {len(run.rows())} of {total} trials finished; the tables show those.** "
        if unfinished
        else ""
    )
    note += (
        f"Wall time of the whole experiment: {wall / 60:.1f} min ({len(run.rows())} trials, "
        f"{how}). "
    )
    if searches:
        note += (
            "Device seconds of the Ray Tune searches (sum of their trials, mean over seeds): "
            + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in searches.items())
            + ". Runs recorded before the harness counted these in the trial's cost show them "
            "only here."
        )
    record(
        f"harness_{spec.name}",
        f"Harness comparison: {spec.name} ({', '.join(spec.dataset_names)})",
        figures,
        note + "\n\n" + body + "\n\n" + "\n".join(links),
    )


if __name__ == "__main__":
    main()
