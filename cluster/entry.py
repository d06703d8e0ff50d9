"""Entry for `ray submit cluster/cluster.yaml cluster/entry.py SPEC [tapweight run options]`.

`ray submit` copies this file to the head and runs it with the system Python; it hands over to
the project's own environment, joined to the running cluster, with the spec resolved inside the
project checkout (~/tapweight) unless it is absolute.
"""

import os
import sys
from pathlib import Path

PROJECT = Path(os.environ.get("TAPWEIGHT_HOME", Path.home() / "tapweight"))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: entry.py SPEC [options of `tapweight run`]")
    spec = Path(sys.argv[1])
    spec = spec if spec.is_absolute() else PROJECT / spec
    if not spec.is_file():
        sys.exit(f"spec {spec} not found on the head node")
    os.chdir(PROJECT)
    os.environ.setdefault("RAY_ADDRESS", "auto")
    tapweight = PROJECT / ".venv" / "bin" / "tapweight"
    os.execv(tapweight, [str(tapweight), "run", str(spec), "--no-progress", *sys.argv[2:]])


if __name__ == "__main__":
    main()
