"""Latency of the job API under concurrent clients, on SQLite and on PostgreSQL.

A real `tapweight serve` process on loopback in store-only mode (TAPWEIGHT_EXECUTOR=none: jobs
are validated and stored, nothing is sent to Ray), driven by 1, 10 and 50 concurrent clients:
p50/p95/p99 of POST /jobs and GET /jobs/{id}, throughput, and jobs lost (accepted with 202 but
absent from the store afterwards). PostgreSQL is a throwaway cluster (initdb + pg_ctl).

    python bench/service_load.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.record import record, table  # noqa: E402
from service.postgres import throwaway_postgres  # noqa: E402
from service.ray_head import free_port  # noqa: E402

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
CLIENTS = (1, 10, 50)


QUICKSTART_FILE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
QUICKSTART = yaml.safe_load(QUICKSTART_FILE.read_text())


def spec(seed: int) -> dict:
    """The README's quickstart with its own seed, so every job is a distinct submission."""
    return {**QUICKSTART, "seeds": [seed]}


@contextmanager
def serve(database_url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TAPWEIGHT_API_TOKENS": TOKEN,
        "TAPWEIGHT_RUNS_DIR": str(workdir / "runs"),
        "TAPWEIGHT_EXECUTOR": "none",
    }
    tapweight = Path(sys.executable).with_name("tapweight")
    command = [str(tapweight), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with (workdir / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"tapweight serve exited; see {workdir / 'serve.log'}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def drive(url: str, clients: int, total: int, request) -> tuple[list[float], list, float]:
    """``total`` requests from ``clients`` concurrent workers; latencies (ms), results, wall s."""
    latencies: list[float] = []
    results: list = []
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits, timeout=120) as http:

        async def worker() -> None:
            for index in queue:
                began = time.perf_counter()
                results.append(await request(http, index))
                latencies.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, results, time.perf_counter() - began


def percentiles(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


async def post_job(http: httpx.AsyncClient, index: int, first_seed: int) -> str:
    response = await http.post("/jobs", json=spec(first_seed + index))
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def get_job(http: httpx.AsyncClient, index: int, ids: list[str]) -> int:
    response = await http.get(f"/jobs/{random.choice(ids)}")
    assert response.status_code == 200, response.text
    return response.status_code


async def measure(url: str, quick: bool) -> tuple[list[dict], int]:
    accepted: set[str] = set()
    rows = []
    for clients in CLIENTS:
        total = (50 if quick else 200) * max(1, clients // 5)
        post = functools.partial(post_job, first_seed=clients * 100_000)
        post_ms, ids, post_s = await drive(url, clients, total, post)
        accepted.update(ids)
        get_ms, _, get_s = await drive(url, clients, total, functools.partial(get_job, ids=ids))
        for route, latencies, seconds in (
            ("POST /jobs", post_ms, post_s),
            ("GET /jobs/{id}", get_ms, get_s),
        ):
            rows.append(
                {
                    "clients": clients,
                    "route": route,
                    "requests": total,
                    **percentiles(latencies),
                    "throughput_rps": total / seconds,
                }
            )
    stored: set[str] = set()
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=120) as http:
        while True:
            page = (await http.get("/jobs", params={"limit": 200, "offset": len(stored)})).json()
            stored.update(job["id"] for job in page["items"])
            if not page["items"]:
                break
    return rows, len(accepted - stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    args = parser.parse_args()
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        work = Path(tmp)
        for backend in ("sqlite", "postgresql"):
            (work / backend).mkdir()
            with nullcontext() if backend == "sqlite" else throwaway_postgres() as pg:
                url = f"{pg}/postgres" if pg else f"sqlite:///{work / backend / 'service.db'}"
                with serve(url, work / backend) as api:
                    rows, lost = asyncio.run(measure(api, args.quick))
            figures[backend] = {"rows": rows, "jobs_lost": lost}
            print(backend, "jobs lost:", lost, flush=True)
    lines = []
    for backend, result in figures.items():
        for row in result["rows"]:
            lines.append(
                [
                    backend,
                    row["clients"],
                    row["route"],
                    row["requests"],
                    f"{row['p50']:.1f}",
                    f"{row['p95']:.1f}",
                    f"{row['p99']:.1f}",
                    f"{row['throughput_rps']:.0f}",
                ]
            )
    headers = ["store", "clients", "route", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s"]
    lost = ", ".join(f"{b}: {r['jobs_lost']}" for b, r in figures.items())
    markdown = (
        "`tapweight serve` on loopback in store-only mode (`TAPWEIGHT_EXECUTOR=none`: each POST "
        "validates the spec and stores the job; nothing goes to Ray), one uvicorn worker; "
        "latency measured by the clients (httpx, one connection per client).\n\n"
        + table(headers, lines)
        + f"\n\nJobs lost (accepted with 202, absent from `GET /jobs` afterwards): {lost}."
    )
    record("service_load", "Service API latency under concurrent clients", figures, markdown)


if __name__ == "__main__":
    main()
