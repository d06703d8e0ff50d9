"""The known-answer check: does a weighting method find the objective that helps and leave the
one that harms?

Objectives {attr_mask, planted_noise, planted_task} (``tapweight/objectives/planted.py``):
``planted_noise`` predicts a coin flip fixed per molecule (harmful by construction),
``planted_task`` the downstream task's own training labels (helpful by construction, Hu et al.'s
supervised pretraining; never validation or test labels). Every strategy searches with the same
budget on BBBP, BACE, ClinTox, ESOL and FreeSolv (scaffold split, the task's training molecules
as corpus), and its final weights are recorded. Not a test that must pass: it says which
strategies find the answer.

Usage: python bench/planted_objective.py [--quick] [--workers N]   (needs TAPWEIGHT_DATA_DIR)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402

DATASETS = ("bbbp", "bace", "clintox", "esol", "freesolv")
OBJECTIVES = ["attr_mask", "planted_noise", "planted_task"]
HARMFUL, HELPFUL = OBJECTIVES.index("planted_noise"), OBJECTIVES.index("planted_task")
ENCODER, ENCODER_OPTIONS = "gin", {"num_layers": 3, "emb_dim": 64}
STRATEGIES: dict[str, dict] = {
    "uniform": {},
    "tapweight": {},
    "grid": {"resolution": 2},
    "optuna": {"n_trials": 6, "n_startup_trials": 3},
    "mometas": {},
    "meta_tartan": {},
    "luo": {},
}
RUN_STEPS, TRIALS = 50, 6
MARGIN = 0.10
"""Found: at least this much more weight on the helpful objective than on the harmful one."""
"""One continued-pretraining run (a grid point, an Optuna trial) and how many fit the budget."""


def _search(job: tuple[str, str, int]) -> tuple[str, str, int, dict]:
    import torch

    from baselines import Budget, make_strategy
    from harness.protocol import search_seed
    from tapweight.components import build_components
    from tapweight.downstream.finetuning import FinetuneConfig
    from tapweight.errors import TapWeightError
    from tapweight.pretrain import PretrainConfig

    strategy_name, dataset, seed = job
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    parts = build_components(
        dataset, ENCODER, OBJECTIVES, "task", os.environ["TAPWEIGHT_DATA_DIR"], seed=seed,
        encoder_options=ENCODER_OPTIONS,
    )  # fmt: skip
    budget = Budget(
        total_pretrain_steps=RUN_STEPS * TRIALS,
        pretrain=PretrainConfig(steps=RUN_STEPS, lr=0.05, optimizer="sgd", progress=False),
        finetune=FinetuneConfig(epochs=3, max_steps_per_epoch=10, progress=False),
    )
    strategy = make_strategy(strategy_name, seed=search_seed(seed), **STRATEGIES[strategy_name])
    began = time.perf_counter()
    try:
        result = strategy.run(parts, budget)
    except TapWeightError as error:
        return strategy_name, dataset, seed, {"refused": str(error)}
    return (
        strategy_name,
        dataset,
        seed,
        {
            "weights": result.weights,
            "seconds": time.perf_counter() - began,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="BBBP and ESOL, one seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    datasets, seeds = (("bbbp", "esol"), [0]) if args.quick else (DATASETS, [0, 1, 2])
    jobs = [(s, d, seed) for d in datasets for seed in seeds for s in STRATEGIES]
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(_search, jobs))
    figures: dict = {}
    rows, refused = [], []
    for dataset in datasets:
        figures[dataset] = {}
        for name in STRATEGIES:
            runs = [r for s, d, _, r in done if s == name and d == dataset]
            weights = [r["weights"] for r in runs if "weights" in r]
            refused += [f"- {name} on {dataset}: {r['refused']}" for r in runs if "refused" in r]
            if not weights:
                continue
            harmful = statistics.fmean(w[HARMFUL] for w in weights)
            helpful = statistics.fmean(w[HELPFUL] for w in weights)
            figures[dataset][name] = {"harmful": harmful, "helpful": helpful, "seeds": len(weights)}
            found = "yes" if helpful - harmful >= MARGIN else "no"
            seconds = statistics.fmean(r["seconds"] for r in runs if "seconds" in r)
            rows.append(
                [dataset, name, f"{harmful:.2f}", f"{helpful:.2f}", found, len(weights),
                 f"{seconds:.0f}"]
            )  # fmt: skip
    body = (
        f"Objectives {' / '.join(OBJECTIVES)}; seeds {seeds}; GIN {ENCODER_OPTIONS}, random "
        f"init; budget {RUN_STEPS * TRIALS} continued-pretraining steps per strategy (runs of "
        f"{RUN_STEPS}: {TRIALS} grid points or Optuna trials). Weights are the strategy's final "
        "ones, mean over seeds; uniform is 0.33 each by definition. *Found* = at least "
        f"{MARGIN:.2f} more weight on the helpful objective than on the harmful one.\n\n"
        + table(
            [
                "dataset",
                "strategy",
                "weight on planted_noise (harmful)",
                "weight on planted_task (helpful)",
                "found",
                "seeds",
                "search s",
            ],
            rows,
        )  # fmt: skip
        + ("\n\nRefused:\n\n" + "\n".join(refused) if refused else "")
    )
    # bench/results/planted_objective.json: {"figures": {dataset: {strategy: {...}}}, stamp}
    record("planted_objective", "Known answer: a harmful and a helpful planted objective",
           figures, body)  # fmt: skip


if __name__ == "__main__":
    main()
