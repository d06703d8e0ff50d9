"""A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl in a temporary folder), for the
store's tests, the load benchmark and trying the service against PostgreSQL without a DBA.

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

from service.ray_head import free_port

__all__ = ["server_binaries", "throwaway_postgres"]


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout first), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def throwaway_postgres(max_connections: int = 300) -> Iterator[str]:
    """Start a private server; yield its admin URL (no database name); stop and delete it."""
    bin_dir = server_binaries()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="tw-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        # runuser lives in /usr/sbin, which a minimal PATH (env -i, cron) leaves out
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        as_user = [runuser or "runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = free_port()

    def pg(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True)

    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
    options = f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off -c max_connections={max_connections}"
    pg(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
