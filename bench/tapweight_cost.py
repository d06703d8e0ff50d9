"""Seconds per iteration: plain weighted continued pretraining vs TapWeight, where the time goes,
and peak memory. Molecules on CPU: BBBP, Hu et al. GCN (supervised_contextpred), objectives
attr_mask + edge_pred + motif, the same batch sizes for every row.

Usage: python bench/tapweight_cost.py [--quick]   (needs TAPWEIGHT_DATA_DIR)
Each configuration runs in its own process, so peak RSS is per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402

OBJECTIVES = ["attr_mask", "edge_pred", "motif"]
CONFIGS = {
    "plain": {},
    "darts": {"hypergradient": "darts"},
    "darts_every_4": {"hypergradient": "darts", "hypergradient_every": 4},
    "exact": {"hypergradient": "exact"},
    "neumann": {"hypergradient": "neumann"},
}
PRETRAIN_BATCH, FINETUNE_BATCH = 64, 32


def _one(name: str, warmup: int, steps: int) -> dict:
    from tapweight.components import build_components
    from tapweight.core import TapWeight, TapWeightConfig
    from tapweight.pretrain import PretrainConfig, continued_pretrain

    parts = build_components("bbbp", "gcn_supervised_contextpred", OBJECTIVES)
    if name == "plain":
        config = PretrainConfig(
            steps=warmup, batch_size=PRETRAIN_BATCH, lr=0.05, optimizer="sgd", progress=False
        )
        continued_pretrain(parts.encoder, parts.objectives, [1, 1, 1], parts.corpus, config)
        start = time.perf_counter()
        continued_pretrain(
            parts.encoder,
            parts.objectives,
            [1, 1, 1],
            parts.corpus,
            config.model_copy(update={"steps": steps}),
        )
        return {
            "s_per_it": (time.perf_counter() - start) / steps,
            "levels": {},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    config = TapWeightConfig(
        iterations=warmup + steps,
        valid_every=10**6,
        checkpoint_every=10**6,
        pretrain_batch_size=PRETRAIN_BATCH,
        finetune_batch_size=FINETUNE_BATCH,
        progress=False,
        **CONFIGS[name],
    )
    runner = TapWeight(parts.encoder, parts.objectives, parts.corpus, parts.task, config)
    spent = {level: 0.0 for level in runner.levels}
    for level_name, level in runner.levels.items():
        inner = level.one_step_descent

        def timed(batch=None, _inner=inner, _name=level_name):
            began = time.perf_counter()
            out = _inner(batch)
            spent[_name] += time.perf_counter() - began
            return out

        level.one_step_descent = timed
    marks = []
    original = runner.levels["pretrain"].get_batch

    def stamped():
        marks.append(time.perf_counter())
        return original()

    runner.levels["pretrain"].get_batch = stamped
    runner.run()
    total = marks[-1] - marks[warmup]  # iterations warmup+1 .. last-1, exclusive of the last
    measured = len(marks) - 1 - warmup
    return {
        "s_per_it": total / measured,
        "levels": {k: v / (warmup + steps) for k, v in spent.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warmup, steps = (2, 5) if args.quick else (3, 20)
    if args.one:
        print(json.dumps(_one(args.one, warmup, steps)))
        return
    os.environ.setdefault("TAPWEIGHT_OFFLINE", "1")
    figures = {}
    for name in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name] + (["--quick"] if args.quick else []),
            capture_output=True,
            text=True,
            check=True,
        )
        figures[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, figures[name], flush=True)
    plain = figures["plain"]["s_per_it"]
    rows = []
    for name, fig in figures.items():
        lv = fig["levels"]
        rows.append(
            [
                name,
                f"{fig['s_per_it']:.3f}",
                f"{fig['s_per_it'] / plain:.2f}×",
                *(f"{lv[k]:.3f}" if lv else "–" for k in ("pretrain", "finetune", "reweight")),
                f"{fig['peak_rss_mb']:.0f}",
            ]
        )
    figures["settings"] = {
        "warmup": warmup,
        "measured_iterations": steps,
        "pretrain_batch": PRETRAIN_BATCH,
        "finetune_batch": FINETUNE_BATCH,
        "objectives": OBJECTIVES,
    }
    note = (
        "BBBP (scaffold train split as the TAPT corpus), Hu et al. GCN 5×300 "
        f"`supervised_contextpred`, objectives {', '.join(OBJECTIVES)}; pretrain batch "
        f"{PRETRAIN_BATCH}, finetune batch {FINETUNE_BATCH}; {steps} measured iterations after "
        f"{warmup} warm-up. `plain` = weighted continued pretraining alone (one optimizer step on "
        "Σ λᵢ·Lᵢ). TapWeight iterations include the finetune step and the λ update; per-level "
        "columns are seconds per iteration inside each level's step (reweight = validation loss + "
        "hypergradient, which re-evaluates the lower levels)."
    )
    headers = [
        "configuration",
        "s / iteration",
        "vs plain",
        "pretrain s",
        "finetune s",
        "reweight s",
        "peak RSS MB",
    ]
    record(
        "tapweight_cost",
        "Cost of TapWeight vs plain continued pretraining (CPU)",
        figures,
        note + "\n\n" + table(headers, rows),
    )


if __name__ == "__main__":
    main()
