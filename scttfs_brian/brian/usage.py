"""Run a compiled standalone program and record its wall time and peak resident memory.

Used as Brian2's run command for ``cpp_standalone`` builds (``python -m scttfs_brian.brian.usage
OUT.json ./main``): the JSON file gets ``{"wall_s": ..., "peak_rss_bytes": ...}`` of the
program, and the program's exit status is passed on.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

#: The file (relative to the program's working directory) the wrapper writes.
USAGE_FILE = "program_usage.json"


def command(program: list[str]) -> list[str]:
    """``program`` (e.g. ``["./main", ...]``) run through this wrapper."""
    return [sys.executable, "-m", "scttfs_brian.brian.usage", USAGE_FILE, *program]


def read_usage(directory: str) -> dict | None:
    """What the wrapper wrote for the last run in ``directory`` (``None`` if nothing)."""
    path = os.path.join(directory, USAGE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m scttfs_brian.brian.usage OUT.json PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    out, cmd = argv[0], argv[1:]
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_bytes = int(peak if sys.platform == "darwin" else peak * 1024)
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"wall_s": wall, "peak_rss_bytes": peak_bytes, "returncode": rc}, f)
    os.replace(tmp, out)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
