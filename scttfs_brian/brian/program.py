"""Standalone programs: a ``cpp_standalone`` network compiled once and run again for every batch
(:func:`compile_program`, :class:`StandaloneProgram`), and the measurement of a program's wall
time, setup and peak memory (:func:`measured_program`, :func:`standalone_timings`, also used by
:func:`~.runtime.simulate` when it builds and runs a program in one call).

A program run is measured by the wrapper :mod:`.usage` (``python -m scttfs_brian.brian.usage``),
which does not import Brian2. Its results are read from the monitors' result files as plain
arrays and collected by the same :func:`~.collect.collect` as a runtime run's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

import brian2 as b2
import numpy as np

from ..graph import Graph
from ..results import SimulationResult
from . import usage
from .build import build_network, check_inputs, input_table
from .collect import Events, Recorded, collect, merge
from .devices import standalone_device
from .memory import BYTES_PER_SYNAPSE, GENERATED_BYTES_PER_SYNAPSE, check_memory, choose_copies

__all__ = ["StandaloneProgram", "compile_program", "measured_program", "standalone_timings"]


@contextlib.contextmanager
def measured_program(target: str):
    """Run the standalone program of the enclosed ``net.run`` through :mod:`.usage` (wall time
    and peak memory written to a JSON file in the project directory); yields whether it is
    wrapped (not for cuda_standalone, nor on Windows)."""
    if target != "cpp_standalone" or os.name == "nt":
        yield False
        return
    prefs = b2.prefs.devices.cpp_standalone
    old = prefs.run_cmd_unix
    prefs.run_cmd_unix = usage.command([old] if isinstance(old, str) else old)
    try:
        yield True
    finally:
        prefs.run_cmd_unix = old


def standalone_timings(timings: dict, memory: dict, elapsed: float, measured: bool) -> None:
    """Split the wall time ``elapsed`` of a standalone ``run()`` into code generation,
    compilation, the program's setup (loading arrays, creating synapses) and its simulation
    loop (added to ``timings``); the wrapped program's peak memory goes to ``memory``."""
    device = b2.get_device()
    run = float(device._last_run_time)
    make = float(getattr(device, "timers", {}).get("compile", {}).get("make") or 0.0)
    program = float(getattr(device, "timers", {}).get("run_binary") or 0.0)
    timings["run"] += run
    timings["compile"] = timings.get("compile", 0.0) + make
    timings["codegen"] = timings.get("codegen", 0.0) + max(0.0, elapsed - make - program)
    timings["setup"] = timings.get("setup", 0.0) + max(0.0, program - run)
    used = usage.read_usage(device.project_dir) if measured else None
    if used is not None:
        memory["program_peak_rss_bytes"] = int(used["peak_rss_bytes"])


class StandaloneProgram:
    """A network compiled once by ``cpp_standalone`` and run again for each batch of inputs.

    :func:`compile_program` builds and compiles the network for batches of up to
    ``batch_size`` inputs; :meth:`simulate` writes each batch's input table to a file and runs
    the compiled program with it as the value of the input ``TimedArray`` (Brian2's
    ``run_args`` mechanism on the program's command line: ``I_in.values=<file>``), then reads
    the monitors' result files. No code generation or compilation happens after the first
    build, so a network that takes minutes to compile (ResNet20: ~5 min here) simulates any
    number of batches for the cost of the program's setup and run. Use it as a context manager,
    or call :meth:`close` to delete the build directory (unless you gave one).
    """

    def __init__(
        self,
        graph: Graph,
        batch_size: int,
        copies: int,
        dt,
        directory: str,
        keep: bool,
        files: dict,
        slots: int,
        timings: dict,
    ):
        self.graph, self.batch_size, self.copies, self.dt = graph, batch_size, copies, dt
        self.directory, self._keep, self._files = directory, keep, files
        self._slots = slots  # input windows per copy in every run (the program's fixed table)
        #: Seconds spent building (``"build"``) and compiling (``"compile"``) the program.
        self.build_timings = timings
        #: Program runs so far (one per batch).
        self.runs = 0

    def __enter__(self) -> StandaloneProgram:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Delete the build directory (if it was a temporary one)."""
        if not self._keep and self.directory and os.path.isdir(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def simulate(self, x: Any, *, record: Any = (), progress: bool = True) -> SimulationResult:
        """Simulate inputs ``x`` (any number: batches of ``batch_size``, one program run each);
        same result as :func:`~.runtime.simulate` with ``target="cpp_standalone"``."""
        if self.directory is None:
            raise RuntimeError("this program was closed; compile it again with compile_program(...)")
        graph = self.graph
        x = check_inputs(graph, x)
        if len(x) == 0:
            raise ValueError("x holds no inputs")
        record = graph.recording(record)
        for name in record:
            if name not in self._files["monitors"]:
                raise ValueError(f"population {name!r} has no monitor in this program")
        from tqdm.auto import tqdm

        pieces, timings, memory = [], {"setup": 0.0, "run": 0.0}, {}
        batches = range(0, len(x), self.batch_size)
        show = progress and len(batches) > 1
        bar = tqdm(
            total=len(batches),
            disable=not show,
            desc="Brian2 cpp_standalone program runs",
            unit="step",
            leave=False,
        )
        for s in batches:
            xb = x[s : s + self.batch_size]
            program_s, run_s, peak = self._run(input_table(graph, xb, self.copies, self._slots))
            timings["run"] += run_s
            timings["setup"] += max(0.0, program_s - run_s)
            memory["program_peak_rss_bytes"] = max(memory.get("program_peak_rss_bytes", 0), peak)
            pieces.append(
                collect(graph, self._recorded(), len(xb), -(-len(xb) // self.copies), self.dt, record)
            )
            bar.update(1)
        bar.close()
        return merge(graph, pieces, timings, memory)

    def _run(self, table: np.ndarray) -> tuple[float, float, int]:
        """Run the program once with ``table`` as ``I_in``; returns its wall time, simulation
        loop time (seconds) and peak resident memory (bytes)."""
        path = os.path.join("static_arrays", "scttfs_batch_input.dat")
        np.ascontiguousarray(table, dtype=np.float64).tofile(os.path.join(self.directory, path))
        cmd = usage.command(["./main", f"{self._files['input']}.values={path}"])
        done = subprocess.run(cmd, cwd=self.directory, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(
                f"the compiled program failed (exit status {done.returncode}) in {self.directory}:\n"
                + (done.stdout + done.stderr)[-2000:]
            )
        self.runs += 1
        used = usage.read_usage(self.directory)
        with open(os.path.join(self.directory, "results", "last_run_info.txt")) as f:
            run_s = float(f.read().split()[0])
        return float(used["wall_s"]), run_s, int(used["peak_rss_bytes"])

    def _recorded(self) -> Recorded:
        """The last run's monitors, read from the program's result files."""
        results = os.path.join(self.directory, "results")

        def read(entry):
            name, dtype = entry
            return np.fromfile(os.path.join(results, name), dtype=dtype)

        def events(m):
            return None if m is None else Events(read(m["i"]).astype(np.int64), read(m["t"]))

        return Recorded(
            output_v=read(self._files["output"]).reshape(-1, self._files["n_output"]).T,
            events={name: (events(s), events(c)) for name, (s, c) in self._files["monitors"].items()},
            copies=self.copies,
        )


def compile_program(
    graph: Graph,
    batch_size: int,
    *,
    copies: int | None = None,
    dt: b2.Quantity = 1 * b2.ms,
    shared_weights: bool = True,
    connectivity: str = "generated",
    directory: str | None = None,
    memory_limit: int | None = None,
) -> StandaloneProgram:
    """Build and compile ``graph`` once with ``cpp_standalone`` for batches of up to
    ``batch_size`` inputs; returns a :class:`StandaloneProgram` whose ``simulate(x)`` runs the
    compiled program again for each batch (no recompilation). ``copies`` defaults as in
    :func:`~.runtime.simulate` (at most ``batch_size``); ``directory`` keeps the build there
    (default: a temporary directory deleted by ``close()``). Results are those of
    :func:`~.runtime.simulate`."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
    if connectivity not in ("arrays", "generated"):
        raise ValueError(f"connectivity must be 'arrays' or 'generated' (got {connectivity!r})")
    generated = connectivity == "generated"
    if generated and not shared_weights:
        raise ValueError("connectivity='generated' needs shared_weights=True")
    copies = choose_copies(graph, batch_size, copies)
    check_memory(
        graph,
        copies,
        batch_size,
        GENERATED_BYTES_PER_SYNAPSE if generated else BYTES_PER_SYNAPSE,
        memory_limit,
    )
    keep = directory is not None
    directory = os.path.abspath(directory) if keep else tempfile.mkdtemp(prefix="scttfs_program_")
    T, w_out = graph.T, graph.windows[graph.output.name]
    slots = -(-batch_size // copies)
    timings: dict = {}
    t0 = time.perf_counter()
    with standalone_device("cpp_standalone", directory, build_on_run=False) as built_in:
        built = build_network(graph, copies, dt, shared_weights, generated)
        # a placeholder of every batch's table shape (the values are replaced at each run)
        empty = np.zeros_like(input_table(graph, np.zeros((1,) + graph.input_shape), copies, slots))
        built.input_group.namespace["I_in"] = b2.TimedArray(empty, dt=T * dt, name="I_in")
        built.net.run(((slots + w_out) * T + 1) * dt, namespace={})
        timings["build"] = time.perf_counter() - t0
        device = b2.get_device()
        device.build(directory=built_in, compile=True, run=False, with_output=False)
        timings["compile"] = time.perf_counter() - t0 - timings["build"]

        def entry(var):
            return device.get_array_filename(var), np.dtype(var.dtype).str

        files = {"input": "I_in", "monitors": {}, "n_output": copies * graph.output.size}
        for name, mons in built.monitors.items():
            files["monitors"][name] = [
                None if m is None else {"i": entry(m.variables["i"]), "t": entry(m.variables["t"])}
                for m in (mons.spikes, mons.calibrations)
            ]
        files["output"] = entry(built.out_monitor.variables["v"])
    return StandaloneProgram(graph, int(batch_size), copies, dt, directory, keep, files, slots, timings)
