"""``tapweight submit`` and ``tapweight fetch``: the job service from the command line, through
:class:`tapweight.client.Client`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tapweight.console import JsonOption, Table, console, emit

__all__ = ["submit", "fetch"]

Server = Annotated[
    str, typer.Option(envvar="TAPWEIGHT_SERVER", help="the service's URL, http://host:8000")
]
Token = Annotated[
    str | None, typer.Option(envvar="TAPWEIGHT_TOKEN", help="bearer token (or TAPWEIGHT_TOKEN)")
]


def _comparison(job: dict[str, Any]) -> Table:
    """The job's results per dataset and strategy, best first as the report ranks them."""
    table = Table(
        ("dataset", "strategy", "weights", "metric", "valid", "test", "test std"),
        title=f"{job['name']}: {job['status']}",
        formats={"valid": ".4f", "test": ".4f", "test std": ".4f"},
    )
    for item in job.get("results", []):
        weights = item.get("weights") if item.get("continued_pretraining") else None
        shown = None if weights is None else ", ".join(f"{w:.3f}" for w in weights)
        table.add_row(
            item["dataset"], item["strategy"], shown, item["metric"], item["valid_mean"],
            item["test_mean"], item.get("test_std"),
        )  # fmt: skip
    return table


def submit(
    spec: Annotated[Path, typer.Argument(help="experiment spec (.yaml/.json)")],
    server: Server,
    token: Token = None,
    follow: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
    as_json: JsonOption = False,
) -> None:
    """Upload the files the spec names, submit it, follow its progress, print the comparison."""
    from rich.progress import Progress

    from tapweight.client import Client

    with Client(server, token) as client:
        job_id = client.submit(spec)
        if not as_json:
            console.print(f"submitted job {job_id} to {server}")
        if not follow:
            if as_json:
                emit(data={"id": job_id}, as_json=True)
            return
        with Progress(disable=as_json or not console.is_terminal, console=console) as bar:
            task = bar.add_task("trials", total=None)

            def on_event(kind: str, data: dict[str, Any]) -> None:
                if kind == "experiment_started":
                    bar.update(task, total=data.get("trials"))
                elif kind == "trial_result":
                    bar.advance(task)
                elif kind == "trial_error" and not as_json:
                    console.print(f"[red]trial error:[/] {data.get('trial')}: {data.get('error')}")

            job = client.wait(job_id, on_event)
        notes = [f"job {job_id} {job['status']}"]
        if job.get("error"):
            notes.append(f"[red]error:[/] {job['error']}")
        if job.get("recommended_artifacts"):
            notes.append(f"`tapweight fetch {job_id} --server {server} --out DIR` downloads the "
                         "report, results and recommended encoder")  # fmt: skip
        emit(_comparison(job), notes=notes, data=job, as_json=as_json)
        if job["status"] != "succeeded":
            raise typer.Exit(1)


def fetch(
    job: Annotated[str, typer.Argument(help="the job's id")],
    server: Server,
    out: Annotated[Path, typer.Option(help="folder for the report, results and encoder")],
    token: Token = None,
    as_json: JsonOption = False,
) -> None:
    """Download a finished job's report, results and recommended encoder(s)."""
    from tapweight.client import Client

    with Client(server, token) as client:
        written = client.fetch(job, out)
    table = Table(("what", "path"), title=f"job {job} -> {out}")
    for what, path in written.items():
        table.add_row(what, str(path))
    notes = [
        f"finetune an encoder: tapweight finetune --dataset ... --encoder {path}"
        for what, path in written.items()
        if what.startswith("encoder:")
    ][:1]
    emit(table, notes=notes, data={k: str(v) for k, v in written.items()}, as_json=as_json)
