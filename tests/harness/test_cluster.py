"""`ray job submit --working-dir . -- tapweight run SPEC` against a real Ray head on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from harness.rundir import RunDirectory
from tests.harness.conftest import tiny_spec, wait_for, write_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 with the Jobs API; stopped with its process group."""
    port, dashboard = _free_port(), _free_port()
    short_temp = tempfile.mkdtemp(prefix="ray")  # Ray's socket paths must stay under 108 bytes
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray 2.59+ protects local clusters with a token (~/.ray/auth_token); clients must say so
        "RAY_AUTH_MODE": "token",
    }
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         "--num-cpus=2", "--num-gpus=0", f"--temp-dir={short_temp}"],
        env=env, stdout=(tmp_path / "head.log").open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"

    def ready() -> bool:
        probe = subprocess.run(
            [str(BIN / "ray"), "job", "list", "--address", address],
            capture_output=True, env=env,
        )  # fmt: skip
        return probe.returncode == 0

    try:
        if head.poll() is not None:
            raise AssertionError((tmp_path / "head.log").read_text()[-2000:])
        wait_for(ready, 120, "the Ray head's Jobs API")
        yield address, env
    finally:
        head.terminate()
        head.wait(timeout=60)


def test_ray_job_submit_runs_a_spec(ray_head, tmp_path):
    address, env = ray_head
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(seeds=[0]))
    out = tmp_path / "run"
    submitted = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
         "--", "tapweight", "run", str(spec), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout
    rows = RunDirectory(out).rows()
    assert sorted(r["strategy"] for r in rows) == ["no_cp", "uniform"]
    assert (out / "report" / "report.md").is_file()


def test_cluster_launcher_config_names_head_and_gpu_workers():
    config = yaml.safe_load((ROOT / "cluster" / "cluster.yaml").read_text())
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert any("g5" in t["node_config"]["InstanceType"] for t in types.values())
    assert any("make install" in command for command in config["setup_commands"])
    usage = subprocess.run(
        [sys.executable, str(ROOT / "cluster" / "entry.py")], capture_output=True, text=True
    )
    assert usage.returncode != 0 and "usage: entry.py SPEC" in usage.stderr
