"""Latency of the job API under concurrent clients, on SQLite and on PostgreSQL, against Ray's
own Jobs API.

A real `tapweight serve` process on loopback in store-only mode (TAPWEIGHT_EXECUTOR=none: jobs
are validated and stored, nothing is sent to Ray), driven by 1, 10 and 50 concurrent clients:
p50/p95/p99 of POST /jobs and GET /jobs/{id}, throughput, and jobs lost (accepted with 202 but
absent from the store afterwards). PostgreSQL is a throwaway cluster (initdb + pg_ctl). Then the
same 50 clients submit a trivial job (`echo ok`) through the REST API of a local Ray head
(loopback, token auth), the latency a service built directly on Ray Jobs would start from.

    python bench/service_load.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import aiohttp
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.record import record, table  # noqa: E402
from service.postgres import throwaway_postgres  # noqa: E402
from service.ray_head import free_port, start_ray_head, stop_ray_head  # noqa: E402

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
CLIENTS = (1, 10, 50)
RAY_CLIENTS = CLIENTS[-1]
RAY_ENTRYPOINT = "echo ok"


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


async def drive(
    url: str, clients: int, total: int, request, headers: dict[str, str] = HEADERS
) -> tuple[list[float], list, float]:
    """``total`` requests from ``clients`` concurrent workers; latencies (ms), results, wall s.

    The clients are aiohttp's (one keep-alive connection each): httpx spends about 3.5 ms of
    CPU per request, as much as the server, and on a 2-core machine that is the server's CPU.
    """
    latencies: list[float] = []
    results: list = []
    queue = iter(range(total))
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as http:

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


async def post_job(http: aiohttp.ClientSession, index: int, first_seed: int) -> str:
    async with http.post("/jobs", json=spec(first_seed + index)) as response:
        assert response.status == 202, await response.text()
        return (await response.json())["id"]


async def get_job(http: aiohttp.ClientSession, index: int, ids: list[str]) -> int:
    async with http.get(f"/jobs/{random.choice(ids)}") as response:
        assert response.status == 200, await response.text()
        await response.read()
        return response.status


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


@contextmanager
def ray_head(workdir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A local Ray head (127.0.0.1, its own token, as the service starts one); its dashboard
    URL and the header its Jobs API wants."""
    token = secrets.token_hex(32)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    with mock.patch.dict(os.environ, auth):  # what `ray start` reads from its environment
        process, url = start_ray_head(workdir / "ray-head.log", num_cpus=os.cpu_count())
    try:
        yield url, {"Authorization": f"Bearer {token}"}
    finally:
        stop_ray_head(process.pid)


async def ray_submit(http: aiohttp.ClientSession, index: int, run: str) -> str:
    """Ray's REST submit (what `JobSubmissionClient.submit_job` sends), a trivial entrypoint."""
    body = {"entrypoint": RAY_ENTRYPOINT, "submission_id": f"bench-{run}-{index}"}
    async with http.post("/api/jobs/", json=body) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["submission_id"]


async def measure_ray(url: str, headers: dict[str, str], quick: bool) -> dict:
    run = secrets.token_hex(4)
    warm = functools.partial(ray_submit, run=f"{run}-warm")
    await drive(url, 1, 3, warm, headers)  # the first submissions start Ray's job agent
    total = RAY_CLIENTS if quick else 2 * RAY_CLIENTS  # each job is a Ray worker process
    latencies, _, seconds = await drive(
        url, RAY_CLIENTS, total, functools.partial(ray_submit, run=run), headers
    )
    return {
        "clients": RAY_CLIENTS,
        "route": f"Ray POST /api/jobs/ ({RAY_ENTRYPOINT})",
        "requests": total,
        **percentiles(latencies),
        "throughput_rps": total / seconds,
    }


def ratios(figures: dict[str, dict], ray: dict) -> dict[str, dict[str, float]]:
    """Per store, our POST /jobs latency at Ray's concurrency over Ray's submit latency."""
    found = {}
    for backend, result in figures.items():
        ours = next(
            row
            for row in result["rows"]
            if row["route"] == "POST /jobs" and row["clients"] == ray["clients"]
        )
        found[backend] = {cut: ours[cut] / ray[cut] for cut in ("p50", "p99")}
    return found


def uvicorn_stack() -> str:
    """The HTTP parser and event loop uvicorn picks in this environment (its "auto"): the C
    ones when installed, else the pure-Python h11 and asyncio, which cost a third more CPU."""
    found = {name: importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")}
    parser = "httptools" if found["httptools"] else "h11"
    loop = "uvloop" if found["uvloop"] else "asyncio"
    return f"{parser} and {loop}"


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
        with ray_head(work) as (ray_url, ray_headers):
            ray = asyncio.run(measure_ray(ray_url, ray_headers, args.quick))
        print("ray jobs api:", ray, flush=True)
    ratio = ratios(figures, ray)
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
    lines.append(
        [
            "Ray Jobs API",
            ray["clients"],
            ray["route"],
            ray["requests"],
            *(f"{ray[cut]:.1f}" for cut in ("p50", "p95", "p99")),
            f"{ray['throughput_rps']:.0f}",
        ]
    )
    headers = ["store", "clients", "route", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s"]
    lost = ", ".join(f"{b}: {r['jobs_lost']}" for b, r in figures.items())
    compared = ", ".join(
        f"{b} {r['p50']:.2f} (p50) and {r['p99']:.2f} (p99)" for b, r in ratio.items()
    )
    markdown = (
        "`tapweight serve` on loopback in store-only mode (`TAPWEIGHT_EXECUTOR=none`: each POST "
        "validates the spec and stores the job; nothing goes to Ray), one uvicorn worker "
        f"({uvicorn_stack()}); "
        "latency measured by the clients (aiohttp, one keep-alive connection per client, on the "
        "same machine). The last row is Ray's own Jobs API on a local head (127.0.0.1, token "
        f"auth) submitting `{RAY_ENTRYPOINT}` with the same {RAY_CLIENTS} clients: what a "
        "service that hands each request straight to Ray would start from.\n\n"
        + table(headers, lines)
        + f"\n\nPOST /jobs latency over Ray's submit latency at {RAY_CLIENTS} clients: "
        + f"{compared}.\n\nJobs lost (accepted with 202, absent from `GET /jobs` afterwards): "
        + f"{lost}."
    )
    results = {**figures, "ray_jobs_api": ray, "post_over_ray_submit": ratio}
    record("service_load", "Service API latency under concurrent clients", results, markdown)


if __name__ == "__main__":
    main()
