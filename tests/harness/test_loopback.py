"""Ray stays on 127.0.0.1 because the project says so: checked in seconds, in a process with
nothing exported, so a regression fails here instead of hanging a cluster test for minutes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.loopback import is_loopback_address

DIALLED = """
import sys
from harness.loopback import keep_ray_on_loopback
if sys.argv[1] == "before":
    keep_ray_on_loopback()
from ray._private.services import canonicalize_bootstrap_address
if sys.argv[1] == "after":
    keep_ray_on_loopback()
print(canonicalize_bootstrap_address("127.0.0.1:6379"))
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_loopback_cluster_address_is_dialled_on_loopback_with_nothing_exported(when):
    """Ray rewrites 127.0.0.1 to the machine's outward address unless told otherwise; the
    project tells it, whether or not Ray was imported first."""
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    dialled = subprocess.run(
        [sys.executable, "-c", DIALLED, when], capture_output=True, text=True, env=clean,
        timeout=120,
    )  # fmt: skip
    assert dialled.returncode == 0, dialled.stderr[-2000:]
    assert dialled.stdout.strip().splitlines()[-1] == "127.0.0.1:6379"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:6379", True),
        ("127.0.1.1:6379", True),
        ("localhost:6379", True),
        ("ray://127.0.0.1:10001", True),
        ("http://127.0.0.1:8265", True),
        ("[::1]:6379", True),
        ("192.0.2.2:6379", False),
        ("10.0.0.5:6379", False),
        ("auto", False),
        ("head.cluster.internal:6379", False),
    ],
)
def test_loopback_addresses_are_recognised(address, loopback):
    assert is_loopback_address(address) is loopback
