"""Every weighting strategy on one real dataset at CPU scale, scored by one shared protocol.

For each strategy and seed: run the strategy's own search within the budget, then take its
weights through the same protocol as every other strategy (continued pretraining for the same
steps from the same starting encoder, finetuning with the same settings, selection on
validation, test read once).

Usage: python bench/strategies_cpu.py [--quick] [--dataset bbbp]   (needs TAPWEIGHT_DATA_DIR)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402

OBJECTIVES = ["attr_mask", "edge_pred", "motif"]


def _final_protocol(parts, result, budget, seed):
    import torch

    from tapweight.downstream.finetuning import finetune
    from tapweight.pretrain import continued_pretrain

    encoder = copy.deepcopy(parts.encoder)
    if result.continued_pretraining:
        torch.manual_seed(seed)
        config = budget.pretrain.model_copy(update={"seed": seed})
        continued_pretrain(
            encoder, copy.deepcopy(parts.objectives), result.weights, parts.corpus, config
        )
    return finetune(encoder, parts.task, budget.finetune.model_copy(update={"seed": seed}))


def _mean_std(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", default="bbbp")
    parser.add_argument("--steps", type=int, default=50, help="pretraining steps of one run")
    parser.add_argument("--epochs", type=int, default=5, help="finetuning epochs")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TAPWEIGHT_OFFLINE", "1")
    from baselines import Budget, make_strategy
    from tapweight.components import build_components
    from tapweight.downstream.finetuning import FinetuneConfig
    from tapweight.pretrain import PretrainConfig

    steps, epochs, seeds = (
        (10, 2, [0]) if args.quick else (args.steps, args.epochs, list(range(args.seeds)))
    )
    strategies = {
        "no_cp": {},
        "uniform": {},
        "single:attr_mask": {},
        "single:edge_pred": {},
        "single:motif": {},
        "grid": {"resolution": 2},
        "optuna": {"n_trials": 6, "n_startup_trials": 3},
        "mometas": {"update_every": 10},
        "meta_tartan": {},
        "luo": {"episode_steps": 10},
        "tapweight": {},
    }
    budget = Budget(
        total_pretrain_steps=6 * steps,
        pretrain=PretrainConfig(
            steps=steps, batch_size=64, lr=0.05, optimizer="sgd", progress=False
        ),
        finetune=FinetuneConfig(epochs=epochs, batch_size=32, progress=False),
    )
    parts = build_components(args.dataset, "gcn_supervised_contextpred", OBJECTIVES)
    metric = parts.task.metric
    rows, figures = [], {}
    for spec, settings in strategies.items():
        runs = []
        for seed in seeds:
            began = time.perf_counter()
            result = make_strategy(spec, seed=seed, **settings).run(parts, budget)
            search_s = time.perf_counter() - began
            final = _final_protocol(parts, result, budget, seed)
            runs.append(
                {
                    "weights": result.weights,
                    "valid": final.valid_score,
                    "test": final.test_score,
                    "search_s": search_s,
                    "passes": result.cost.total_passes,
                    "full_trainings": result.cost.full_trainings,
                    "native": result.native_scores,
                }
            )
            print(spec, seed, runs[-1], flush=True)
        figures[spec] = runs

        weights = [statistics.mean(r["weights"][i] for r in runs) for i in range(len(OBJECTIVES))]
        shown = "-" if spec == "no_cp" else " / ".join(f"{w:.2f}" for w in weights)
        rows.append(
            [
                spec,
                shown,
                _mean_std(runs, "valid"),
                _mean_std(runs, "test"),
                f"{statistics.mean(r['search_s'] for r in runs):.0f}",
                f"{statistics.mean(r['passes'] for r in runs):.0f}",
            ]
        )
    ranked = sorted(
        rows,
        key=lambda r: -float(r[2].split(" ")[0]) if metric != "rmse" else float(r[2].split(" ")[0]),
    )
    note = (
        f"{args.dataset}, scaffold split, Hu et al. GCN `supervised_contextpred`, objectives "
        f"{' / '.join(OBJECTIVES)} (weights in that order), TAPT corpus (the task's train "
        f"molecules); seeds {seeds}. One training run = {steps} continued-pretraining steps "
        f"(SGD 0.05, batch 64) + {epochs} finetuning epochs; search budget "
        f"{budget.total_pretrain_steps} pretraining steps. Validation/test: the shared protocol "
        f"applied to each strategy's weights ({metric}, mean ± std over seeds; test read once per "
        "run). Search s / passes: the strategy's own search. CPU scale: far fewer steps than the "
        "papers, so differences between strategies are mostly within noise; rows sorted by "
        "validation."
    )
    headers = [
        "strategy",
        "weights",
        f"valid {metric}",
        f"test {metric}",
        "search s",
        "search passes",
    ]
    record(
        f"strategies_{args.dataset}_cpu",
        f"Strategy comparison on {args.dataset} (CPU scale)",
        figures,
        note + "\n\n" + table(headers, ranked),
    )


if __name__ == "__main__":
    main()
