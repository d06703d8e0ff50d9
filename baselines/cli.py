"""``tapweight strategy ...``: run any weighting strategy alone (registered as a CLI plugin)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tapweight.console import JsonOption, Table, emit

app = typer.Typer(help="Run one weighting strategy on one task.", no_args_is_help=True)


@app.command("list")
def list_strategies(as_json: JsonOption = False) -> None:
    """Every strategy with what it reads."""
    from baselines import STRATEGIES

    table = Table(("strategy", "reads validation", "what"))
    for name, cls in STRATEGIES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, cls.requires_validation, doc)
    emit(table, as_json=as_json)


@app.command("run")
def run(
    strategy: Annotated[str, typer.Argument(help="e.g. mometas, grid, optuna, single:motif")],
    dataset: Annotated[str, typer.Option(help="labeled downstream dataset")],
    objectives: Annotated[str, typer.Option(help="comma-separated objective names")],
    encoder: Annotated[str, typer.Option(help="starting encoder spec")] = "gin",
    corpus: Annotated[str, typer.Option(help="'task', a corpus key or a SMILES file")] = "task",
    max_corpus: Annotated[int | None, typer.Option(min=2)] = None,
    steps: Annotated[int, typer.Option(min=1, help="pretraining steps of one training run")] = 100,
    budget: Annotated[
        int | None, typer.Option(min=1, help="total pretraining steps (default: steps)")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="finetuning epochs per trial")] = 10,
    settings: Annotated[
        str, typer.Option(help='strategy settings as JSON, e.g. {"resolution": 2}')
    ] = "{}",
    out: Annotated[Path | None, typer.Option(help="write result.json (+ encoder.pt) here")] = None,
    data_dir: Annotated[Path | None, typer.Option(envvar="TAPWEIGHT_DATA_DIR")] = None,
    seed: int = 0,
    as_json: JsonOption = False,
) -> None:
    """Run STRATEGY and print its weights, native validation score and cost."""
    from baselines import Budget, make_strategy
    from tapweight.components import build_components
    from tapweight.downstream.finetuning import FinetuneConfig
    from tapweight.errors import ConfigError
    from tapweight.pretrain import PretrainConfig

    try:
        extra = json.loads(settings)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--settings is not valid JSON: {error}") from None
    chosen = make_strategy(strategy, seed=seed, **extra)
    names = [n.strip() for n in objectives.split(",") if n.strip()]
    parts = build_components(
        dataset, encoder, names, corpus, data_dir, seed=seed, max_corpus=max_corpus
    )
    plan = Budget(
        total_pretrain_steps=budget or steps,
        pretrain=PretrainConfig(steps=steps, seed=seed),
        finetune=FinetuneConfig(epochs=epochs, seed=seed),
    )
    result = chosen.run(parts, plan)
    table = Table(("objective", "weight"), f"{result.strategy} on {dataset}", {"weight": ".4f"})
    for name, weight in zip(result.objective_names, result.weights, strict=True):
        table.add_row(name, weight)
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.native_scores.items())
    notes = [
        f"native: {scores}; cost {result.cost.wall_clock_s:.1f} s, passes {result.cost.passes}"
    ]
    if out is not None:
        notes.append(f"wrote {result.save(out)}")
    emit(table, notes=notes, data=result.model_dump(mode="json"), as_json=as_json)
