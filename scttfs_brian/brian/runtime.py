"""Run many inputs through a Brian2 network built from a :class:`~scttfs_brian.graph.Graph`,
in one ``run`` per chunk of inputs: :func:`simulate`.

Two kinds of batching are combined (measured in ``benchmarks/brian_throughput.py``):

* **network copies**: the graph is instantiated ``copies`` times side by side in the same
  groups (neuron ``c * n + k`` is neuron ``k`` of copy ``c``), so one time step advances
  ``copies`` inputs with vectorized code;
* **pipelined windows**: every spiking layer encodes one input per window while decoding the
  next (SPEC section 2), so copy ``c`` takes input ``s * copies + c`` in window ``s``, and a
  stream of ``S`` slots needs ``S + depth`` windows instead of ``S * depth``.

Layer ``l`` encodes input slot ``s`` in window ``s + w_l`` (``w_l`` = :attr:`Graph.windows`);
spikes of windows with no valid slot (the pipeline filling up, padding copies) are discarded
(:mod:`.collect`). The first spiking layer reads its potential from a 2-D
:class:`~brian2.TimedArray` at each window boundary (:func:`~.build.input_table`).
"""

from __future__ import annotations

import time
from typing import Any

import brian2 as b2

from ..graph import Graph
from ..results import SimulationResult
from .build import BuiltNetwork, build_network, check_inputs, input_table
from .collect import collect, merge, recorded_from_monitors
from .devices.targets import STANDALONE_TARGETS, check_target, use_target
from .memory import BYTES_PER_SYNAPSE, GENERATED_BYTES_PER_SYNAPSE, check_memory, choose_copies
from .program import measured_program, standalone_timings

__all__ = ["simulate"]


def simulate(
    graph: Graph,
    x: Any,
    *,
    copies: int | None = None,
    target: str = "numpy",
    dt: b2.Quantity = 1 * b2.ms,
    record: Any = (),
    images_per_run: int | None = None,
    memory_limit: int | None = None,
    shared_weights: bool | None = None,
    connectivity: str = "auto",
    progress: bool = True,
    device: str | None = None,
) -> SimulationResult:
    """Simulate inputs ``x`` (shape ``(N, *graph.input_shape)``) in Brian2.

    The network is built once (:func:`~.build.build_network`) and runs the inputs in chunks of
    ``images_per_run`` (restored between chunks in runtime mode; one chunk, one program, in
    standalone mode); results are collected from the monitors' arrays (:mod:`.collect`).

    Parameters
    ----------
    copies : int, optional
        Network copies simulated side by side (default: ``DEFAULT_COPIES``, fewer when the
        copies would exceed ``DEFAULT_SYNAPSE_BUDGET`` synapses, at most ``N``).
    target : str
        ``"numpy"`` (default), ``"cython"``, ``"cpp_standalone"`` (one program, all inputs
        in one run) or ``"cuda_standalone"`` (the same on a GPU through brian2cuda, see
        :mod:`scttfs_brian.brian.devices.cuda`).
    dt : Quantity
        Time step (default 1 ms).
    record : sequence of str, dict or True
        Spiking populations whose spike times are returned (``True``: all); a dict
        ``{population: flat neuron indices}`` returns those neurons only (shape ``(N, k)``).
    images_per_run : int, optional
        Inputs per ``run`` call (pipelined through the copies); default: all of them, unless
        the input table would exceed ~256 MB. The network is built once and restored between
        runs.
    memory_limit : int, optional
        Bytes the build may use (default: 80% of the memory available now). A build estimated
        above it is refused with :class:`BuildTooLarge` before anything is allocated.
    shared_weights : bool, optional
        Store each projection's weights once (a conv kernel, not one weight per synapse) and
        give every synapse an int32 index into that table, through a Brian2 linked variable.
        Saves memory on big convolutional builds (see ``benchmarks/results``); in runtime mode
        the indirection costs some speed. Default: on with generated connectivity, else off.
        Results are identical either way.
    connectivity : {"auto", "arrays", "generated"}
        How synapses are created. ``"arrays"``: from index arrays computed in Python (any
        projection). ``"generated"``: convolutional and dense projections (pooling folded in)
        are connected by Brian2's generated code from the kernel's geometry
        (``connect(j='... for k in range(...) if ...')``) and their weight index is an
        expression of ``i`` and ``j``, so neither Python nor the standalone program holds index
        arrays; other projections use arrays. Needs shared weights. ``"auto"`` (default):
        ``"generated"`` for the standalone targets, ``"arrays"`` in runtime mode. Results are
        identical either way (synapses are summed in another order: outputs agree to rounding,
        spikes exactly, as tested).
    progress : bool
        Show a progress bar over simulated time.
    device : str, optional
        Another name for ``target`` (``device="cpp_standalone"`` reads as Brian2's
        ``set_device``); give one or the other.
    """
    if device is not None:
        if target != "numpy" and target != device:
            raise ValueError(f"give target or device, not both (got target={target!r}, device={device!r})")
        target = device
    check_target(target)
    shared_weights, generated = _connectivity(target, shared_weights, connectivity)
    x = check_inputs(graph, x)
    N = len(x)
    if N == 0:
        raise ValueError("x holds no inputs")
    copies = choose_copies(graph, N, copies)
    standalone = target in STANDALONE_TARGETS
    per_synapse = GENERATED_BYTES_PER_SYNAPSE if generated and standalone else BYTES_PER_SYNAPSE
    need = check_memory(graph, copies, N, per_synapse, memory_limit)
    record = graph.recording(record)
    chunks = _chunks(N, copies, need, images_per_run, standalone)
    w_out = graph.windows[graph.output.name]
    from tqdm.auto import tqdm

    total_steps = sum(((-(-(e - s) // copies)) + w_out) * graph.T + 1 for s, e in chunks)
    desc = f"Brian2 {target}, {copies} copies"
    bar = tqdm(total=total_steps, disable=not progress, desc=desc, unit="step", leave=False)
    pieces, timings, memory = [], {"build": 0.0, "run": 0.0}, {}
    with use_target(target):
        t0 = time.perf_counter()
        built = build_network(graph, copies, dt, shared_weights, generated)
        if not standalone:
            built.net.store("initial")
        timings["build"] = time.perf_counter() - t0
        for ci, (s, e) in enumerate(chunks):
            slots = -(-(e - s) // copies)
            _run_chunk(graph, built, x[s:e], slots, dt, target, bar, timings, memory, restore=ci > 0)
            recorded = recorded_from_monitors(built.monitors, built.out_monitor, copies)
            pieces.append(collect(graph, recorded, e - s, slots, dt, record))
    bar.close()
    return merge(graph, pieces, timings, memory)


def _connectivity(target: str, shared_weights: bool | None, connectivity: str) -> tuple[bool, bool]:
    """``(shared_weights, generated)`` for :func:`simulate`'s options, checked."""
    if connectivity not in ("auto", "arrays", "generated"):
        raise ValueError(f"connectivity must be 'auto', 'arrays' or 'generated' (got {connectivity!r})")
    if connectivity == "auto":
        connectivity = (
            "generated" if target in STANDALONE_TARGETS and shared_weights is not False else "arrays"
        )
    if shared_weights is None:
        shared_weights = connectivity == "generated"
    if connectivity == "generated" and not shared_weights:
        raise ValueError(
            "connectivity='generated' stores each kernel once and indexes it per synapse: "
            "it needs shared_weights=True (or connectivity='arrays' for one weight per synapse)"
        )
    return bool(shared_weights), connectivity == "generated"


def _chunks(
    N: int, copies: int, need: int, images_per_run: int | None, standalone: bool
) -> list[tuple[int, int]]:
    """``(start, end)`` of the inputs of each ``run``: all of them in standalone mode (one
    program); in runtime mode ``images_per_run`` (default: as many as keep the input table
    under ~256 MB, estimated from ``need``, the build's bytes), at least ``copies``."""
    n_in_cols = max(1, int(need / max(copies, 1)))  # rough bytes per copy for the chunk bound
    if images_per_run is None:
        images_per_run = N if standalone else max(copies, min(N, int(256e6 // (n_in_cols // 8 + 1)) * 1))
    images_per_run = max(copies, int(images_per_run))
    if standalone:
        images_per_run = N
    return [(s, min(N, s + images_per_run)) for s in range(0, N, images_per_run)]


def _run_chunk(
    graph: Graph,
    built: BuiltNetwork,
    x,
    slots: int,
    dt,
    target: str,
    bar,
    timings: dict,
    memory: dict,
    restore: bool,
) -> None:
    """Set the input table of ``x`` (``slots`` windows per copy), restore the initial state
    (``restore``: every chunk after the first) and run ``built`` through the pipeline; adds
    the run's timings (and, for a standalone program, its code generation, compilation, setup
    and peak memory) to ``timings`` and ``memory``."""
    T = graph.T
    steps = (slots + graph.windows[graph.output.name]) * T + 1
    table = input_table(graph, x, built.copies, slots)
    built.input_group.namespace["I_in"] = b2.TimedArray(table, dt=T * dt, name="I_in")
    if restore:
        built.net.restore("initial")
    t0 = time.perf_counter()
    done = bar.n
    standalone = target in STANDALONE_TARGETS
    if standalone:  # compiled and executed here; reports are C++ text only
        with measured_program(target) as measured:
            built.net.run(steps * dt, namespace={})
    else:
        built.net.run(
            steps * dt,
            namespace={},
            report=(lambda el, c, st, du: bar.update(done + int(c * steps) - bar.n)),
            report_period=1 * b2.second,
        )
    bar.update(done + steps - bar.n)
    elapsed = time.perf_counter() - t0
    if standalone and getattr(b2.get_device(), "_last_run_time", None) is not None:
        # code generation, compilation and the program all happen inside run()
        standalone_timings(timings, memory, elapsed, measured)
    else:
        timings["run"] += elapsed
