"""Which protocol can tell strategies apart? Seed noise against differences, measured.

The harness's protocol (continued-pretraining steps, finetuning epochs, finetuning seeds) decides
how much seed noise a comparison carries. This runs fixed weightings that need no search
(``no_cp``, ``uniform``, ``single:attr_mask``) through candidate protocols on several seeds, the
way the harness does (same pretraining seed and finetuning seeds for every weighting of a seed,
``harness.protocol``), and reports per dataset and protocol: the seed standard deviation of the
test metric, the standard deviation of the paired differences, the minimum detectable effect at
3 and 5 seeds (``harness.paired.minimum_detectable``), the largest difference between the
weightings' means, and the cost of one protocol run. The finetuning-seed variants reuse one run:
"×3" averages the first three finetuning seeds of ``harness.protocol.finetune_seeds``.

Usage: python bench/protocol_power.py [--quick] [--workers N]   (needs TAPWEIGHT_DATA_DIR)
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402

ENCODER, OBJECTIVES = "gcn_supervised_contextpred", ["attr_mask", "edge_pred", "motif"]
ARMS: dict[str, list[float] | None] = {
    "no_cp": None,
    "uniform": [1 / 3, 1 / 3, 1 / 3],
    "single:attr_mask": [1.0, 0.0, 0.0],
}
FINETUNE_SEEDS = 3


class Protocol(NamedTuple):
    pretrain_steps: int
    epochs: int

    @property
    def name(self) -> str:
        return f"{self.pretrain_steps} steps, {self.epochs} epochs"


PROTOCOLS = (Protocol(40, 4), Protocol(40, 10))
"""The earlier protocol (4 epochs) first, then longer finetuning (Hu et al. finetune for 100
epochs, beyond a CPU comparison of every strategy on five datasets). An earlier run of this
script on FreeSolv (3 seeds, 20 epochs, one finetuning seed) measured 200 pretraining steps
against 40: the weightings' largest difference shrank from 0.17 to 0.01 RMSE while the paired
SD grew from 0.10 to 0.16. More pretraining makes weightings alike; it is not a candidate."""


def _runs(job: tuple[str, int, str]) -> tuple[str, int, str, dict[str, dict]]:
    """One weighting on one seed through every protocol: test and valid per finetuning seed."""
    import torch

    from harness.protocol import finetune_seeds
    from tapweight.components import build_components
    from tapweight.downstream.finetuning import FinetuneConfig, finetune
    from tapweight.pretrain import PretrainConfig

    dataset, seed, arm = job
    torch.set_num_threads(1)
    parts = build_components(
        dataset, ENCODER, OBJECTIVES, data_dir=os.environ["TAPWEIGHT_DATA_DIR"], seed=seed
    )
    weights = ARMS[arm]
    encoders: dict[int, tuple[torch.nn.Module, float]] = {}
    found: dict[str, dict] = {}
    for protocol in PROTOCOLS:
        steps = protocol.pretrain_steps if weights is not None else 0
        if steps not in encoders:
            began = time.perf_counter()
            config = PretrainConfig(
                steps=max(steps, 1), batch_size=64, lr=0.05, optimizer="sgd", progress=False
            )
            encoder, _ = parts.pretrained_copy(weights, config, seed)
            encoders[steps] = (encoder, time.perf_counter() - began)
        encoder, pretrain_seconds = encoders[steps]
        runs: dict[str, list[float]] = {"test": [], "valid": [], "seconds": []}
        for finetune_seed in finetune_seeds(seed, FINETUNE_SEEDS):
            began = time.perf_counter()
            torch.manual_seed(finetune_seed)
            config = FinetuneConfig(epochs=protocol.epochs, seed=finetune_seed, progress=False)
            finetuned = finetune(copy.deepcopy(encoder), parts.task, config)
            runs["test"].append(finetuned.test_score)
            runs["valid"].append(finetuned.valid_score)
            runs["seconds"].append(time.perf_counter() - began)
        runs["pretrain_seconds"] = [pretrain_seconds]
        found[protocol.name] = runs
    return dataset, seed, arm, found


def _pooled_sd(groups: list[list[float]]) -> float:
    """Root mean square of the groups' standard deviations (each over seeds)."""
    return math.sqrt(statistics.fmean(statistics.variance(g) for g in groups))


def _summary(by_arm: dict[str, dict[int, list[float]]], finetune_seeds: int) -> dict:
    """Noise, paired noise and the largest difference of one dataset × protocol, scoring each
    seed by the mean of its first ``finetune_seeds`` finetuning seeds."""
    from harness.paired import minimum_detectable

    score = {
        arm: {seed: statistics.fmean(tests[:finetune_seeds]) for seed, tests in seeds.items()}
        for arm, seeds in by_arm.items()
    }
    seeds = sorted(set.intersection(*(set(s) for s in score.values())))
    differences = [
        [score[a][s] - score[b][s] for s in seeds] for a, b in itertools.combinations(score, 2)
    ]
    means = [statistics.fmean(score[arm][s] for s in seeds) for arm in score]
    paired = _pooled_sd(differences)
    return {
        "seeds": len(seeds),
        "seed_sd": _pooled_sd([[score[arm][s] for s in seeds] for arm in score]),
        "paired_sd": paired,
        "mde_3": minimum_detectable(paired, 3),
        "mde_5": minimum_detectable(paired, 5),
        "largest_difference": max(means) - min(means),
        "means": dict(zip(score, means, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="FreeSolv, 3 seeds")
    parser.add_argument("--datasets", default="bbbp,esol,freesolv")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    datasets = ["freesolv"] if args.quick else args.datasets.split(",")
    seeds = list(range(3 if args.quick else args.seeds))
    jobs = [(d, s, arm) for d in datasets for s in seeds for arm in ARMS]
    began = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(_runs, jobs))
    wall = time.perf_counter() - began
    figures: dict = {}
    rows = []
    for dataset, protocol in itertools.product(datasets, PROTOCOLS):
        runs = {(s, arm): found[protocol.name] for d, s, arm, found in done if d == dataset}
        tests = {arm: {s: runs[s, arm]["test"] for s in seeds} for arm in ARMS}
        cost = statistics.fmean(
            r["pretrain_seconds"][0] + statistics.fmean(r["seconds"]) for r in runs.values()
        )
        for count in (1, FINETUNE_SEEDS):
            summary = _summary(tests, count)
            summary["seconds_per_run"] = cost + (count - 1) * statistics.fmean(
                statistics.fmean(r["seconds"]) for r in runs.values()
            )
            label = f"{protocol.name}, ×{count} finetuning"
            figures.setdefault(dataset, {})[label] = summary
            rows.append(
                [dataset, label, f"{summary['seed_sd']:.3f}", f"{summary['paired_sd']:.3f}",
                 f"{summary['mde_3']:.3f}", f"{summary['mde_5']:.3f}",
                 f"{summary['largest_difference']:.3f}",
                 " / ".join(f"{m:.3f}" for m in summary["means"].values()),
                 f"{summary['seconds_per_run']:.0f}"]
            )  # fmt: skip
    body = (
        f"Encoder `{ENCODER}`, objectives {' / '.join(OBJECTIVES)}, seeds {seeds}, weightings "
        f"{' / '.join(ARMS)} (means in that order), {len(jobs)} jobs on {args.workers} worker(s) "
        f"in {wall / 60:.1f} min. Seed SD: the test metric's standard deviation over seeds, "
        "pooled over weightings. Paired SD: the standard deviation of two weightings' difference "
        "on the same seed, pooled over pairs. MDE: the smallest mean paired difference a paired "
        "t-test detects with 80% power at the 5% level over 3 or 5 seeds. s/run: one protocol "
        "run (pretraining and its finetuning runs), one thread.\n\n"
        + table(
            [
                "dataset",
                "protocol",
                "seed SD",
                "paired SD",
                "MDE 3 seeds",
                "MDE 5 seeds",
                "largest difference",
                "means",
                "s/run",
            ],
            rows,
        )  # fmt: skip
    )
    # bench/results/protocol_power.json: {"figures": {dataset: {protocol: {...}}}, stamp}
    record("protocol_power", "Protocol power: seed noise against differences", figures, body)


if __name__ == "__main__":
    main()
