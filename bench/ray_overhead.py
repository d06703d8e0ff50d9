"""Ray Tune overhead on this machine: trial start-up, scheduling share, parallel speed-up.

N identical CPU-bound trials (a fixed amount of single-threaded matrix work, ~WORK_S seconds)
run through a Tuner with 1 and with 2 concurrent trials. Reported: the Tuner's wall time, the sum
of the trials' own compute time, the time from a trial's creation to its first line of code
(start-up), and overhead = wall − compute/concurrency as a share of the wall time.

Usage: python bench/ray_overhead.py [--quick] [--trials 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402


def work(config: dict) -> None:
    import torch
    from ray import tune

    entered = time.time()
    torch.set_num_threads(1)
    began = time.perf_counter()
    a = torch.randn(256, 256)
    for _ in range(config["repeats"]):
        a = torch.tanh(a @ a / 256)
    tune.report({"compute_s": time.perf_counter() - began, "entered": entered})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import tempfile

    import ray
    from ray import tune

    from harness.loopback import keep_ray_on_loopback

    trials = 2 if args.quick else args.trials
    repeats = 300 if args.quick else 2000
    keep_ray_on_loopback()
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    rows, figures = [], {}
    try:
        for concurrent in (1, 2):
            with tempfile.TemporaryDirectory() as storage:
                tuner = tune.Tuner(
                    tune.with_resources(work, {"cpu": 1}),
                    param_space={"repeats": repeats, "i": tune.grid_search(list(range(trials)))},
                    tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                    run_config=tune.RunConfig(storage_path=storage, verbose=0),
                )
                began = time.time()
                results = tuner.fit()
                wall = time.time() - began
            compute = [r.metrics["compute_s"] for r in results]
            entered = sorted(r.metrics["entered"] for r in results)
            startup = entered[0] - began  # the first trial's way from fit() to its code
            overhead = wall - sum(compute) / concurrent
            figures[f"concurrent_{concurrent}"] = {
                "wall_s": wall, "compute_s": compute, "first_trial_startup_s": startup,
                "overhead_s": overhead,
            }  # fmt: skip
            rows.append(
                [
                    concurrent, trials, f"{wall:.1f}", f"{statistics.mean(compute):.2f}",
                    f"{startup:.1f}", f"{overhead:.1f} ({100 * overhead / wall:.0f}%)",
                ]
            )  # fmt: skip
    finally:
        ray.shutdown()
    speedup = figures["concurrent_1"]["wall_s"] / figures["concurrent_2"]["wall_s"]
    figures["speedup_2_vs_1"] = speedup
    note = (
        f"{trials} trials, each ~{statistics.mean(figures['concurrent_1']['compute_s']):.1f} s of "
        f"single-threaded matrix work, 1 CPU each, local Ray on this machine. Start-up: from "
        f"`Tuner.fit()` to the first trial's first line. Overhead: wall − compute ÷ concurrency. "
        f"Speed-up of 2 concurrent trials over 1: {speedup:.2f}×."
    )
    headers = ["concurrent", "trials", "wall s", "compute s/trial", "start-up s", "overhead"]
    record("ray_overhead", "Ray Tune overhead", figures, note + "\n\n" + table(headers, rows))


if __name__ == "__main__":
    main()
