"""A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl in a temporary folder), for the
store's tests, the load benchmark, the database fault test and trying the service against
PostgreSQL without a DBA.

initdb refuses to run as root, so as root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from service.ray_head import free_port

__all__ = ["PostgresCluster", "server_binaries", "throwaway_postgres"]


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout first), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A private cluster in a temporary folder: ``start`` and ``stop`` keep its data and its
    port, so that a client sees the same server go away and come back."""

    def __init__(self, max_connections: int = 300) -> None:
        bin_dir = server_binaries()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self._bin = bin_dir
        self._root = Path(tempfile.mkdtemp(prefix="tw-pg-"))
        self._data = self._root / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # runuser lives in /usr/sbin, which a minimal PATH (env -i, cron) leaves out
            path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
            self._as_user = [
                shutil.which("runuser", path=path) or "runuser",
                "-u",
                "postgres",
                "--",
            ]
            shutil.chown(self._root, "postgres")
        self.port = free_port()
        self._options = (
            f"-p {self.port} -k {self._root} -h 127.0.0.1 -c fsync=off "
            f"-c max_connections={max_connections}"
        )
        self._pg("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        """The admin URL, without a database name."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        log = str(self._root / "log")
        self._pg("pg_ctl", "-D", str(self._data), "-o", self._options, "-l", log, "-w", "start")

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """``fast`` ends every session (as a restart does); ``immediate`` as a crash does."""
        self._pg("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        subprocess.run(
            [*self._as_user, str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "immediate",
             "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self._root, ignore_errors=True)

    def _pg(self, program: str, *arguments: str) -> None:
        command = [*self._as_user, str(self._bin / program), *arguments]
        subprocess.run(command, check=True, capture_output=True)


@contextmanager
def throwaway_postgres(max_connections: int = 300) -> Iterator[str]:
    """Start a private server; yield its admin URL (no database name); stop and delete it."""
    cluster = PostgresCluster(max_connections)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.remove()
