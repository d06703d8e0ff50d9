"""The deployment files: docker-compose.yml passes `docker-compose config` and wires the API,
PostgreSQL, a Ray head and a GPU worker together; the Dockerfile mirrors `make install`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"RAY_AUTH_TOKEN": "t", "POSTGRES_PASSWORD": "p", "TAPWEIGHT_API_TOKENS": "a,b"}


@pytest.fixture(scope="module")
def compose() -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **SECRETS},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_wires_api_postgres_ray_head_and_gpu_worker(compose):
    services = compose["services"]
    assert set(services) == {"api", "postgres", "ray-head", "ray-gpu-worker"}
    api = services["api"]
    assert api["environment"]["DATABASE_URL"].startswith(
        "postgresql+psycopg://tapweight:p@postgres"
    )
    assert api["environment"]["RAY_ADDRESS"] == "http://ray-head:8265"
    assert {"postgres", "ray-head"} <= set(api["depends_on"])
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    for name, service in services.items():
        assert "healthcheck" in service, name
    for name in ("api", "ray-head", "ray-gpu-worker"):  # one runs volume for API and nodes
        assert any(
            v.startswith("runs:/runs") or v == "runs:/runs:rw" for v in _volumes(services[name])
        )


def _volumes(service: dict) -> list[str]:
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out.append(f"{volume['source']}:{volume['target']}")
        else:
            out.append(volume)
    return out


def test_compose_refuses_to_start_without_its_secrets():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr + result.stdout


def test_dockerfile_installs_like_the_makefile():
    dockerfile = (ROOT / "Dockerfile").read_text()
    steps = [
        dockerfile.index("torch==2.13.0"),
        dockerfile.index("--no-deps --ignore-requires-python betty-ml==0.2.1"),
        dockerfile.index("RUN pip install ."),
    ]
    assert steps == sorted(steps)
    assert re.search(r'CMD \["tapweight", "serve", "--host", "0.0.0.0"', dockerfile)
