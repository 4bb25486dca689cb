"""Shared pieces of the benchmarks: machine description and load, atomic writes, peak memory, fresh
processes."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import tempfile


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), model
        )
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def host() -> str:
    """The machine's network name (``platform.node()``), to tell machines apart in results."""
    return platform.node() or "unknown host"


def load_average() -> list[float]:
    """The machine's load average over 1, 5 and 15 minutes (``os.getloadavg``): on a quiet
    machine the 1-minute value, before a benchmark starts, is near 0."""
    return [float(v) for v in os.getloadavg()]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: str, obj) -> None:
    write_json = json.dumps(obj, indent=2, sort_keys=True)
    write_atomic(path, write_json + "\n")


def run_in_fresh_process(measure, *args) -> dict:
    """Run ``measure(*args, queue)`` in a spawned process (so its memory and threads are its
    own) and return what it puts on the queue; raises if the process dies first (e.g. killed
    for memory)."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=measure, args=(*args, q))
    p.start()
    while True:
        try:
            out = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(
                    f"the measurement {args} failed (exit code {p.exitcode}); see above"
                ) from None
    p.join()
    return out
