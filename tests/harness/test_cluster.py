"""Cluster entry points against real Ray nodes on loopback: `ray job submit` to a head (the
session's), and `cluster/entry.py` (what `ray submit` runs on the head) on a cluster of two
nodes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.loopback import LOOPBACK_ENV, is_loopback_address, keep_ray_on_loopback
from harness.rundir import RunDirectory
from tests.harness.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SUBPROCESS_TIMEOUT_S = 240
"""Well under the test's own timeout: a driver that cannot find its cluster fails the test
with its output, instead of the test hanging until pytest-timeout kills it."""


def test_ray_job_submit_runs_a_spec(ray_head, tmp_path):
    """`ray job submit` to the session's head (its Jobs API), as a user submits to a cluster."""
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(seeds=[0]))
    out = tmp_path / "run"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **ray_head.env}
    submitted = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", ray_head.jobs_url, "--working-dir",
         str(ROOT), "--", "tapweight", "run", str(spec), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=SUBPROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout
    rows = RunDirectory(out).rows()
    assert sorted(r.strategy for r in rows) == ["no_cp", "uniform"]
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


@pytest.fixture
def two_node_cluster():
    """A head and a worker node of one CPU each on 127.0.0.1, through Ray's own multi-node
    test cluster (`ray start` refuses a second node on one host when it must stay on loopback)."""
    keep_ray_on_loopback()
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    try:
        cluster.add_node(**node)
        addresses = [n.node_ip_address for n in cluster.list_all_nodes()]
        assert all(is_loopback_address(a) for a in addresses), addresses
        yield cluster.address
    finally:
        cluster.shutdown()


def test_entry_spreads_trials_over_the_nodes_of_a_cluster(two_node_cluster, tmp_path):
    """Two one-CPU trials can only run at once on different nodes; both rows must come back
    to the run directory, each naming the node that ran it."""
    if Path(sys.executable).parent != ROOT / ".venv" / "bin":
        pytest.skip("entry.py hands over to the project's .venv (make install)")
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(seeds=[0], resources={"cpu": 1}))
    out = tmp_path / "run"
    # Nothing exported: the driver keeps to loopback because the project's code says so.
    env = {k: v for k, v in os.environ.items() if k not in LOOPBACK_ENV}
    submitted = subprocess.run(
        [sys.executable, str(ROOT / "cluster" / "entry.py"), str(spec), "--out", str(out)],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
        env={**env, "TAPWEIGHT_HOME": str(ROOT), "RAY_ADDRESS": two_node_cluster},
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    rows = RunDirectory(out).rows()
    assert sorted(r.strategy for r in rows) == ["no_cp", "uniform"]
    assert len({r.ran_on["ray_node"] for r in rows}) == 2
