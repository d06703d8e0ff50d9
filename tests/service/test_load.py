"""A real `tapweight serve` process over loopback: concurrent submissions and retries."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.service.conftest import ALICE, tiny_spec

pytestmark = pytest.mark.slow


async def _post_all(url: str, bodies: list[dict], headers: list[dict]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        return await asyncio.gather(
            *(client.post("/jobs", json=b, headers=h) for b, h in zip(bodies, headers, strict=True))
        )


def test_200_concurrent_submissions_make_exactly_200_jobs(serve, database_url):
    server = serve(database_url, TAPWEIGHT_EXECUTOR="none")
    bodies = [tiny_spec(seeds=[i]) for i in range(200)]
    responses = asyncio.run(_post_all(server.url, bodies, [ALICE] * 200))
    assert [r.status_code for r in responses] == [202] * 200
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 200
    listed = httpx.get(f"{server.url}/jobs?limit=200", headers=ALICE).json()
    assert listed["total"] == 200 and {j["id"] for j in listed["items"]} == ids

    # 50 clients retrying one request with one Idempotency-Key make one job between them.
    retry = {**ALICE, "Idempotency-Key": "same-request"}
    responses = asyncio.run(_post_all(server.url, [tiny_spec(seeds=[999])] * 50, [retry] * 50))
    assert [r.status_code for r in responses] == [202] * 50
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.json()["created"] for r in responses) == 1
    assert httpx.get(f"{server.url}/jobs", headers=ALICE).json()["total"] == 201
