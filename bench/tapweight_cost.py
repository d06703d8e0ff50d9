"""Seconds per iteration: plain weighted continued pretraining vs TapWeight, where the time goes,
and peak memory, with the same batches for every row.

Molecules (CPU set): BBBP, Hu et al. GCN (supervised_contextpred), attr_mask + edge_pred + motif.
Text (GPU set): citation_intent, MiniLM-L6, mlm + simcse + sop, the paper's text optimizers; on
CUDA also darts in bf16.

Usage: python bench/tapweight_cost.py [--quick] [--domain text] [--configs darts,...]
(needs TAPWEIGHT_DATA_DIR)
Each configuration runs in its own process, so peak memory is per configuration.
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
from record import RESULTS, record, table  # noqa: E402

DOMAINS = {
    "molecule": {
        "dataset": "bbbp",
        "encoder": "gcn_supervised_contextpred",
        "objectives": ["attr_mask", "edge_pred", "motif"],
        "batches": (64, 32),
        "plain": {"lr": 0.05, "optimizer": "sgd"},
    },
    "text": {
        "dataset": "tapt_citation_intent",
        "encoder": "minilm",
        "objectives": ["mlm", "simcse", "sop"],
        "batches": (16, 16),
        "plain": {"lr": 2e-5, "optimizer": "adam"},
    },
}
HOME_DEVICE = {"molecule": "cpu", "text": "cuda"}
"""Where each domain's figures belong (`make bench`, `make bench-gpu`); another device gets a
section of its own."""
CONFIGS = {
    "plain": {},
    "darts": {"hypergradient": "darts"},
    "darts_betty": {"hypergradient": "darts", "structured_hypergradient": False},
    "darts_every_4": {"hypergradient": "darts", "hypergradient_every": 4},
    "exact": {"hypergradient": "exact"},
    "exact_betty": {"hypergradient": "exact", "structured_hypergradient": False},
    "neumann": {"hypergradient": "neumann"},
}
LAMBDA_LINK = "pretrain→reweight"
"""The hypergradient link from the pretraining loss to λ (inside the reweight level's time)."""
PROFILED = "darts"
"""The configuration one iteration of which is profiled (``--profile``) into PROFILE."""
PROFILE = RESULTS / "tapweight_cost_profile.txt"
CUDA_CONFIGS = {"darts_bf16": {"hypergradient": "darts", "precision": "bf16"}}


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_memory() -> dict[str, float]:
    import torch

    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def _one(domain: str, name: str, warmup: int, steps: int, profile: bool = False) -> dict:
    import torch

    from tapweight.components import build_components
    from tapweight.core import TapWeight, TapWeightConfig
    from tapweight.pretrain import PretrainConfig, continued_pretrain

    setup, device = DOMAINS[domain], _device()
    pretrain_batch, finetune_batch = setup["batches"]
    parts = build_components(setup["dataset"], setup["encoder"], setup["objectives"])
    ones = [1.0] * len(setup["objectives"])
    if name == "plain":
        config = PretrainConfig(
            steps=warmup, batch_size=pretrain_batch, device=device, progress=False,
            **setup["plain"],
        )  # fmt: skip
        collate = parts.corpus_collate
        continued_pretrain(parts.encoder, parts.objectives, ones, parts.corpus, config, collate)
        _sync()
        start = time.perf_counter()
        continued_pretrain(
            parts.encoder,
            parts.objectives,
            ones,
            parts.corpus,
            config.model_copy(update={"steps": steps}),
            collate,
        )
        _sync()
        return {"s_per_it": (time.perf_counter() - start) / steps, "levels": {}, **_peak_memory()}
    settings = dict(
        # the last one ends in the final evaluation: not timed; with a profile, the one before
        # it is the profiled one, after the measured iterations
        iterations=warmup + steps + 1 + int(profile),
        valid_every=10**6,
        checkpoint_every=10**6,
        pretrain_batch_size=pretrain_batch,
        finetune_batch_size=finetune_batch,
        device=device,
        progress=False,
        finetune_warmup_steps=0,  # every timed iteration updates λ: the steady-state cost
        **{**CONFIGS, **CUDA_CONFIGS}[name],
    )
    config = TapWeightConfig.for_task(domain, parts.task.task_type, **settings)
    runner = TapWeight(
        parts.encoder, parts.objectives, parts.corpus, parts.task, config, parts.corpus_collate
    )
    spent = {level: 0.0 for level in runner.levels}
    for level_name, level in runner.levels.items():
        inner = level.one_step_descent

        def timed(batch=None, _inner=inner, _name=level_name):
            _sync()
            began = time.perf_counter()
            out = _inner(batch)
            _sync()
            spent[_name] += time.perf_counter() - began
            return out

        level.one_step_descent = timed
    links = _timed_links()
    marks: list[tuple[float, dict[str, float], dict[str, float]]] = []  # clock, spent, links
    original = runner.levels["pretrain"].get_batch
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    def stamped():
        marks.append((time.perf_counter(), dict(spent), dict(links)))
        if profile and len(marks) == warmup + steps + 1:  # after the measured iterations
            profiler.__enter__()
        elif profile and len(marks) == warmup + steps + 2:
            profiler.__exit__(None, None, None)
            PROFILE.write_text(
                f"One {name} iteration ({domain}, {device}), torch.profiler, by self CPU time\n"
                + profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
            )
        return original()

    runner.levels["pretrain"].get_batch = stamped
    runner.run()
    # Iterations warmup+1 .. warmup+steps, for the total and for each level alike: warm-up
    # (CUDA context, cuBLAS handles, allocator growth) lands in the levels' first calls.
    (began, spent_before, links_before), (ended, spent_after, links_after) = (
        marks[warmup],
        marks[warmup + steps],
    )
    return {
        "s_per_it": (ended - began) / steps,
        "levels": {k: (spent_after[k] - spent_before[k]) / steps for k in spent},
        "links": {k: (v - links_before.get(k, 0.0)) / steps for k, v in links_after.items()},
        **_peak_memory(),
    }


def _timed_links() -> dict[str, float]:
    """Seconds spent in each hypergradient link (``"pretrain→reweight"``: λ's link), timed
    around betty's jvp functions and around λ's structured link, which text's summed paths
    call directly; a link that hands over to another is counted once."""
    import betty.hypergradient as betty_hypergradient

    from tapweight.core import hypergradient

    links: dict[str, float] = {}
    depth = [0]

    def timed(function):
        def link(vector, curr, prev, sync, *rest):
            depth[0] += 1
            _sync()
            began = time.perf_counter()
            try:
                return function(vector, curr, prev, sync, *rest)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    _sync()
                    key = f"{curr.name}→{prev.name}"
                    links[key] = links.get(key, 0.0) + time.perf_counter() - began

        return link

    mapping = betty_hypergradient.jvp_fn_mapping
    for kind, function in list(mapping.items()):
        mapping[kind] = timed(function)
    hypergradient.pretrain_to_reweight = timed(hypergradient.pretrain_to_reweight)
    return links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="molecule")
    parser.add_argument(
        "--configs",
        help="comma-separated configurations to run (plain is always run first), e.g. "
        "darts,darts_betty for text on a CPU; default: all",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warmup, steps = (2, 5) if args.quick else (3, 20)
    if args.one:
        print(json.dumps(_one(args.domain, args.one, warmup, steps, args.profile)))
        return
    os.environ.setdefault("TAPWEIGHT_OFFLINE", "1")
    device = _device()
    names = ["plain", "darts", "darts_betty", "exact"]  # the ratios first, should time run short
    names += [n for n in CONFIGS if n not in names]
    if device == "cuda":
        names += list(CUDA_CONFIGS)
    if args.configs:
        chosen = {n.strip() for n in args.configs.split(",")}
        unknown = chosen - set(names)
        if unknown:
            parser.error(f"--configs: unknown {sorted(unknown)}; choose from {names}")
        names = ["plain", *(n for n in names if n in chosen and n != "plain")]
    figures: dict = {}
    failures: dict[str, str] = {}
    for name in names:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--domain", args.domain]
            + (["--quick"] if args.quick else [])
            + (["--profile"] if name == PROFILED and args.domain == "molecule" else []),
            capture_output=True,
            text=True,
        )
        if out.returncode == 0:
            figures[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(name, figures[name], flush=True)
        else:
            failures[name] = (out.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr, flush=True)
        if "plain" in figures:  # every configuration so far is on record if the run is cut
            _record(args.domain, device, warmup, steps, figures, failures)
    if failures:
        sys.exit(f"failed: {', '.join(failures)}")


def _record(domain, device, warmup, steps, figures, failures) -> None:
    setup = DOMAINS[domain]
    plain = figures["plain"]["s_per_it"]
    memory = "peak_gpu_mb" if device == "cuda" else "peak_rss_mb"
    rows = []
    for name, fig in figures.items():
        lv, link = fig["levels"], fig.get("links", {}).get(LAMBDA_LINK)
        rows.append(
            [
                name,
                f"{fig['s_per_it']:.3f}",
                f"{fig['s_per_it'] / plain:.2f}×",
                *(f"{lv[k]:.3f}" if lv else "–" for k in ("pretrain", "finetune", "reweight")),
                "–" if link is None else f"{link:.3f}",
                "–" if link is None else f"{(fig['s_per_it'] - link) / plain:.2f}×",
                f"{fig[memory]:.0f}",
            ]
        )
    pretrain_batch, finetune_batch = setup["batches"]
    settings = {
        **{k: v for k, v in setup.items() if k != "batches"},
        "warmup": warmup,
        "measured_iterations": steps,
        "pretrain_batch": pretrain_batch,
        "finetune_batch": finetune_batch,
        "device": device,
    }
    corpus = {
        "molecule": "BBBP (scaffold train split as the TAPT corpus), Hu et al. GCN 5×300 "
        "`supervised_contextpred`",
        "text": "citation_intent (its training texts as the TAPT corpus, 128 tokens), MiniLM-L6, "
        "the reference's text optimizers (Adam 2e-5 with weight decay 1e-3, `plain` Adam 2e-5; "
        "λ by Adam 2e-3) and proximal term (L2 + L1, in the upper level too)",
    }[domain]
    note = (
        f"{corpus}, objectives {', '.join(setup['objectives'])}; pretrain batch "
        f"{pretrain_batch}, finetune batch {finetune_batch}; {steps} measured iterations after "
        f"{warmup} warm-up. `plain` = weighted continued pretraining alone (one optimizer step on "
        "Σ λᵢ·Lᵢ). TapWeight iterations include the finetune step and the λ update; per-level "
        "columns are seconds per iteration inside each level's step (reweight = validation loss + "
        "hypergradient); `λ link` is the part of it in the link from the pretraining loss to λ "
        "(the objectives re-evaluated at the current parameters), and `without λ link` the "
        "ratio were that link free: the floor of any hypergradient that pays the finetune step "
        "and the validation pass. `darts`, `exact`: the structured hypergradient "
        "(`tapweight.core.hypergradient`: the proximal link in closed form; λ's link from the "
        "objective losses alone, darts by the same central difference without graphs, exact by "
        "forward mode); `_betty`: betty's generic functions, which re-evaluate the finetuned "
        "model for the proximal link and backpropagate λ's link through the encoder"
        + ("; on CUDA each level is timed between device synchronizations." if device == "cuda"
           else ".")
    )  # fmt: skip
    headers = ["configuration", "s / iteration", "vs plain", "pretrain s", "finetune s"]
    headers += ["reweight s", "λ link s", "without λ link"]
    headers += ["peak GPU MB" if device == "cuda" else "peak RSS MB"]
    name = "tapweight_cost" if domain == "molecule" else f"tapweight_cost_{domain}"
    if device != HOME_DEVICE[domain]:
        name += f"_{device}"
    if failures:
        note += " Failed: " + "; ".join(f"`{k}`: {v}" for k, v in failures.items()) + "."
    record(
        name,
        f"Cost of TapWeight vs plain continued pretraining ({domain}, {device.upper()})",
        {**figures, "settings": settings, "failed": failures},
        note + "\n\n" + table(headers, rows),
    )


if __name__ == "__main__":
    main()
