"""``tapweight run|resume|report`` and ``tapweight spec schema|check`` (registered as plugins)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from tapweight.console import JsonOption, Table, console, emit

spec_app = typer.Typer(
    help="Experiment specs: check one, print the JSON schema.", no_args_is_help=True
)

Address = Annotated[
    str | None,
    typer.Option(envvar="RAY_ADDRESS", help="Ray cluster to join (default: start Ray locally)"),
]
Quiet = Annotated[bool, typer.Option("--no-progress", help="no progress bars")]
Local = Annotated[
    bool,
    typer.Option(
        "--local",
        help="run the trials in this process, one after another, without Ray (no retries; "
        "the same proposals and early stopping as on Ray)",
    ),
]


DataDir = Annotated[
    Path | None, typer.Option(envvar="TAPWEIGHT_DATA_DIR", help="shared data folder")
]
Workers = Annotated[
    int, typer.Option(min=1, help="with --local: trials run at a time, in worker processes")
]


def _check_local(local: bool, address: str | None, workers: int) -> None:
    if local and address:
        raise typer.BadParameter("--local runs without Ray; drop --address / RAY_ADDRESS")
    if workers > 1 and not local:
        raise typer.BadParameter(
            "--workers is for --local; Ray runs as many trials at once as resources allow"
        )


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("resume")(resume)
    app.command("report")(report)


def run(
    spec: Annotated[Path, typer.Argument(help="experiment spec (.yaml or .json)")],
    out: Annotated[
        Path | None, typer.Option(help="run directory (default: runs/<name>-<date-time>)")
    ] = None,
    address: Address = None,
    data_dir: DataDir = None,
    no_progress: Quiet = False,
    local: Local = False,
    workers: Workers = 1,
    as_json: JsonOption = False,
) -> None:
    """Run every strategy of SPEC through Ray Tune and write results and a report."""
    from harness.spec import load_spec

    _check_local(local, address, workers)
    parsed = load_spec(spec)
    if out is None:
        out = Path("runs") / f"{parsed.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if local:
        from harness.local import run_local

        run_dir = run_local(parsed, out, not no_progress, workers, data_dir)
    else:
        from harness.runner import run_experiment

        run_dir = run_experiment(parsed, out, address, not no_progress, data_dir)
    _summary(run_dir, as_json=as_json)


def resume(
    directory: Annotated[Path, typer.Argument(help="run directory of an interrupted run")],
    address: Address = None,
    data_dir: DataDir = None,
    no_progress: Quiet = False,
    local: Local = False,
    workers: Workers = 1,
    as_json: JsonOption = False,
) -> None:
    """Continue an interrupted run; finished trials are kept, not run again."""
    _check_local(local, address, workers)
    if local:
        from harness.local import resume_local

        run_dir = resume_local(directory, not no_progress, workers, data_dir)
    else:
        from harness.runner import resume_experiment

        run_dir = resume_experiment(directory, address, not no_progress, data_dir)
    _summary(run_dir, as_json=as_json)


def report(
    directory: Annotated[Path, typer.Argument(help="run directory")],
    as_json: JsonOption = False,
) -> None:
    """(Re)write report.md, report.html and the figures from the results so far."""
    from harness.report import write_report
    from harness.rundir import RunDirectory

    run_dir = RunDirectory(directory)
    written = write_report(run_dir)
    _summary(run_dir, written, as_json)


def _summary(run_dir, written: Path | None = None, as_json: bool = False) -> None:
    """Per dataset a table of the strategies; ``--json`` gives the summaries' raw numbers and
    the reference's paired differences."""
    from dataclasses import asdict

    from harness.paired import paired_differences
    from harness.report import HEADERS, summary_cells
    from harness.summary import summarize

    rows_read = run_dir.rows()
    reference = run_dir.load_spec().reference
    by_dataset = summarize(rows_read)
    tables = []
    for dataset, summaries in by_dataset.items():
        rows: list[Sequence[Any]] = [summary_cells(summary) for summary in summaries]
        tables.append(Table(HEADERS, f"{dataset} ({summaries[0].metric})", rows=rows))
    path = written or run_dir.report_path("md")
    data = {
        "report": str(path),
        "datasets": {
            name: [asdict(s) for s in summaries] for name, summaries in by_dataset.items()
        },
        "reference": reference,
        "paired": [
            d.model_dump() for d in (paired_differences(rows_read, reference) if reference else [])
        ],
    }
    emit(*tables, notes=[f"report: {path} (and report.html, figures/)"], data=data, as_json=as_json)


@spec_app.command("schema")
def schema(
    out: Annotated[Path | None, typer.Option(help="write here instead of printing")] = None,
) -> None:
    """The JSON schema of experiment specs."""
    from harness.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out is None:
        console.print_json(text)
    else:
        out.write_text(text)


@spec_app.command("row-schema")
def row_schema(
    out: Annotated[Path | None, typer.Option(help="write here instead of printing")] = None,
) -> None:
    """The JSON schema of a results row (results.jsonl, the service's results)."""
    from harness.row import row_json_schema

    text = json.dumps(row_json_schema(), indent=2) + "\n"
    if out is None:
        console.print_json(text)
    else:
        out.write_text(text)


@spec_app.command("check")
def check(spec: Annotated[Path, typer.Argument(help="experiment spec (.yaml or .json)")]) -> None:
    """Validate SPEC and list the trials it would run."""
    from harness.cells import cells_of
    from harness.spec import load_spec

    parsed = load_spec(spec)
    cells = cells_of(parsed)
    console.print(
        f"{spec}: valid ({parsed.domain}, spec hash {parsed.spec_hash()}), {len(cells)} trials"
    )
