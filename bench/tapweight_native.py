"""Is TapWeight's own finetuned model trained? Its native validation score against `uniform`'s
protocol score at the same number of finetuning steps, and λ's trajectory, with the reference's
defaults (``TapWeightConfig.for_task``) at 300 iterations.

BBBP and ESOL (scaffold split), Hu et al. GCN (supervised_contextpred), attr_mask + edge_pred +
motif, seeds 0-2. TapWeight's finetune level takes one step per iteration, so `uniform` gets the
same count: 300 continued-pretraining steps with uniform weights, then the protocol's finetuning
(Adam 1e-3, batch 32) for 12 epochs of 25 steps, best epoch on validation.

Usage: python bench/tapweight_native.py [--quick] [--workers 2]   (needs TAPWEIGHT_DATA_DIR)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402

DATASETS = ("bbbp", "esol")
ENCODER = "gcn_supervised_contextpred"
OBJECTIVES = ["attr_mask", "edge_pred", "motif"]
EPOCHS, STEPS_PER_EPOCH = 12, 25


def _components(dataset: str, seed: int):
    import torch

    from tapweight.components import build_components

    torch.manual_seed(seed)
    return build_components(
        dataset, ENCODER, OBJECTIVES, data_dir=os.environ["TAPWEIGHT_DATA_DIR"], seed=seed
    )


def tapweight(dataset: str, seed: int, iterations: int) -> dict:
    import torch

    from tapweight.core import TapWeight, TapWeightConfig

    torch.set_num_threads(1)
    parts = _components(dataset, seed)
    config = TapWeightConfig.for_task(
        "molecule", parts.task.task_type, iterations=iterations,
        valid_every=max(1, iterations // 12), seed=seed, progress=False,
    )  # fmt: skip
    result = TapWeight(
        parts.encoder, parts.objectives, parts.corpus, parts.task, config, parts.corpus_collate
    ).run()
    metric = parts.task.metric
    return {
        "native_valid": result.native_scores[f"valid_{metric}"],
        "weights": result.weights,
        "trajectory": [[p.step, *p.weights] for p in result.trajectory],
        "seconds": result.cost.wall_clock_s,
        "warmup_steps": config.warmup_steps,
    }


def uniform(dataset: str, seed: int, iterations: int) -> dict:
    import copy

    import torch

    from tapweight.downstream.finetuning import FinetuneConfig, finetune
    from tapweight.pretrain import PretrainConfig, continued_pretrain

    torch.set_num_threads(1)
    parts = _components(dataset, seed)
    encoder = copy.deepcopy(parts.encoder)
    pretrain = PretrainConfig(steps=iterations, lr=0.05, optimizer="sgd", seed=seed, progress=False)
    continued_pretrain(encoder, copy.deepcopy(parts.objectives), [1 / 3] * 3, parts.corpus,
                       pretrain, parts.corpus_collate)  # fmt: skip
    epochs = max(1, EPOCHS * iterations // 300)
    config = FinetuneConfig(
        epochs=epochs, max_steps_per_epoch=STEPS_PER_EPOCH, patience=None, seed=seed,
        progress=False,
    )  # fmt: skip
    finetuned = finetune(encoder, parts.task, config, evaluate_test=False)
    return {"protocol_valid": finetuned.valid_score, "finetune_steps": epochs * STEPS_PER_EPOCH}


def _job(job: tuple[str, str, int, int]) -> tuple[str, str, int, dict]:
    kind, dataset, seed, iterations = job
    return (
        kind,
        dataset,
        seed,
        (tapweight if kind == "tapweight" else uniform)(dataset, seed, iterations),
    )


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 iterations, one seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    iterations, seeds = (30, [0]) if args.quick else (300, [0, 1, 2])
    kinds = ("tapweight", "uniform")
    jobs = [(k, d, s, iterations) for d in DATASETS for s in seeds for k in kinds]
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(_job, jobs))
    figures: dict = {"iterations": iterations, "seeds": seeds}
    rows = []
    for dataset in DATASETS:
        runs = {k: {s: r for kk, d, s, r in done if kk == k and d == dataset} for k in
                ("tapweight", "uniform")}  # fmt: skip
        native = [runs["tapweight"][s]["native_valid"] for s in seeds]
        protocol = [runs["uniform"][s]["protocol_valid"] for s in seeds]
        final = [runs["tapweight"][s]["weights"] for s in seeds]
        figures[dataset] = {"tapweight": runs["tapweight"], "uniform": runs["uniform"]}
        lam = " / ".join(f"{statistics.mean(w[i] for w in final):.2f}" for i in range(3))
        rows.append([
            dataset, _mean_std(native), _mean_std(protocol), lam,
            f"{statistics.mean(runs['tapweight'][s]['seconds'] for s in seeds):.0f}",
        ])  # fmt: skip
    trajectories = []
    for dataset in DATASETS:
        for seed in seeds:
            points = figures[dataset]["tapweight"][seed]["trajectory"]
            shown = ", ".join(f"{p[0]}: {'/'.join(f'{w:.2f}' for w in p[1:])}" for p in points)
            trajectories.append(f"- {dataset}, seed {seed}: {shown}")
    warmup = figures[DATASETS[0]]["tapweight"][seeds[0]]["warmup_steps"]
    body = (
        f"{iterations} iterations, seeds {seeds}; λ order: {' / '.join(OBJECTIVES)}. TapWeight's "
        f"finetune level trains its head for {warmup} steps before the first λ update. "
        f"`uniform`: {iterations} pretraining steps, then {EPOCHS * iterations // 300} epochs "
        f"of {STEPS_PER_EPOCH} finetuning steps with the protocol's settings, best epoch on "
        "validation (TapWeight's native model is its last step). Validation only: the test "
        "split is the protocol's.\n\n"
        + table(
            [
                "dataset",
                "TapWeight native valid",
                "uniform protocol valid",
                "final λ (mean)",
                "TapWeight s",
            ],
            rows,
        )  # fmt: skip
        + "\n\nλ trajectory (step: weights):\n\n"
        + "\n".join(trajectories)
    )
    record("tapweight_native", "TapWeight's native model and λ with the reference's defaults",
           figures, body)  # fmt: skip
    print(body)


if __name__ == "__main__":
    main()
