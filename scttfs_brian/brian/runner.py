"""Build a Brian2 network from a :class:`~.graph.Graph` and run many inputs in one ``run``.

Two kinds of batching are combined (measured in ``benchmarks/brian_throughput.py``):

* **network copies**: the graph is instantiated ``copies`` times side by side in the same
  groups (neuron ``c * n + k`` is neuron ``k`` of copy ``c``), so one time step advances
  ``copies`` inputs with vectorized code;
* **pipelined windows**: every spiking layer encodes one input per window while decoding the
  next (SPEC section 2), so copy ``c`` takes input ``s * copies + c`` in window ``s``, and a
  stream of ``S`` slots needs ``S + depth`` windows instead of ``S * depth``.

Layer ``l`` encodes input slot ``s`` in window ``s + w_l`` (``w_l`` = :attr:`Graph.windows`);
spikes of windows with no valid slot (the pipeline filling up, padding copies) are discarded.
The first spiking layer reads its potential from a 2-D :class:`~brian2.TimedArray` at each
window boundary: ``W x + b`` for analog input, or the pixels for an encoded input layer.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import brian2 as b2
import numpy as np
import psutil

from ..coding import as_potentials
from ..graph import INPUT, Graph
from ..results import SimulationResult
from . import usage as _program
from .neurons import LayerMonitors, integrating_layer, layer_synapses, spike_steps, spiking_layer
from .targets import STANDALONE_TARGETS, check_target, use_target

__all__ = ["simulate", "compile_program", "StandaloneProgram", "estimate_memory", "BuildTooLarge", "BYTES_PER_SYNAPSE", "GENERATED_BYTES_PER_SYNAPSE"]

#: Bound on the bytes per synapse of a build from index arrays (runtime mode, or standalone with
#: ``connectivity="arrays"``): measured 43-53 bytes on ResNet20 (peak over build and run,
#: benchmarks/results/cifar_brian.md), plus headroom for the index arrays passed to ``connect``.
BYTES_PER_SYNAPSE = 100
#: Bound on the bytes per synapse of a cpp_standalone program with generated connectivity:
#: int32 ``_synaptic_pre``, ``_synaptic_post`` and ``widx``, one int32 spike-queue entry per
#: pathway (queues reserved exactly, see targets.py), no per-synapse delay; measured 24-25 bytes
#: on VGG16 and ResNet20 (program peak resident memory / synapses), benchmarks/results/cifar_brian.md.
GENERATED_BYTES_PER_SYNAPSE = 32
#: Bytes per neuron (state variables, spike spaces, monitors' share), a generous bound.
BYTES_PER_NEURON = 200
#: Default bound on the synapses of one build (all copies), which sets the default ``copies``.
DEFAULT_SYNAPSE_BUDGET = 8_000_000
#: Default number of network copies (runtime mode: ~256 copies saturate the vectorized
#: step on the MLP benchmark; more copies only add build time).
DEFAULT_COPIES = 256


class BuildTooLarge(MemoryError):
    """The requested Brian2 build would not fit in memory; the message says what would."""


def _brian_name(index: int, name: str) -> str:
    clean = "".join(ch if ch.isalnum() else "_" for ch in name)
    return f"L{index}_{clean}"[:60]


def synapses_per_copy(graph: Graph) -> int:
    """Number of synapses of one copy of the network (analog input projections excluded)."""
    total = 0
    for layer in graph.layers:
        for proj in layer.inputs:
            if proj.source == INPUT and graph.input_code is None:
                continue
            total += proj.n_synapses(graph.shape_of(proj.source))
    return total


def neurons_per_copy(graph: Graph) -> int:
    n = sum(l.size for l in graph.layers)
    if graph.input_code is not None:
        n += int(np.prod(graph.input_shape))
    return n


def estimate_memory(graph: Graph, copies: int, n_inputs: int = 0, bytes_per_synapse: int = BYTES_PER_SYNAPSE) -> int:
    """Bytes a build with ``copies`` copies needs (synapses x bytes per synapse, neurons,
    input table), before anything is allocated."""
    first = max(
        (l.size for l in graph.layers if any(p.source == INPUT for p in l.inputs)), default=0
    )
    n_in = int(np.prod(graph.input_shape)) if graph.input_code is not None else first
    return int(
        copies * synapses_per_copy(graph) * bytes_per_synapse
        + copies * neurons_per_copy(graph) * BYTES_PER_NEURON
        + (n_inputs + copies) * n_in * 8
    )


def _check_inputs(graph: Graph, x: Any) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(as_potentials(x, "x"), dtype=np.float64)
    if x.shape[1:] != graph.input_shape:
        raise ValueError(
            f"x must have shape (n_inputs, {', '.join(map(str, graph.input_shape))}) (got {x.shape}); "
            "pass a batch, e.g. x[None] for a single input"
        )
    if graph.input_code is not None and x.size and x.min() < 0:
        raise ValueError(
            f"x must be >= 0 when the input is SC-TTFS-encoded (min {x.min():.4g}); "
            "use unnormalized inputs or analog input coding (input_code=None)"
        )
    return x


@dataclass
class _Built:
    net: b2.Network
    groups: dict
    monitors: dict
    out_monitor: b2.StateMonitor
    input_group: b2.NeuronGroup
    input_size: int
    copies: int
    windows: dict = field(default_factory=dict)


def _build(graph: Graph, copies: int, dt, shared_weights: bool = False, generated: bool = False) -> _Built:
    """Build the network; ``generated=True`` (needs ``shared_weights``) creates the synapses of
    convolutional and dense projections with :func:`_connect_conv`."""
    if generated and not shared_weights:
        raise ValueError("generated connectivity stores each kernel once: it needs shared_weights=True")
    T = graph.T
    groups, monitors, objects = {}, {}, []
    input_group, input_size = None, 0
    if graph.input_code is not None:
        input_size = int(np.prod(graph.input_shape))
        G = spiking_layer(
            copies * input_size, graph.input_code, name="L_input", dt=dt, window_input="I_in(t, i)",
            namespace={"I_in": None},
        )
        groups[INPUT] = input_group = G
    for li, layer in enumerate(graph.layers):
        name = _brian_name(li, layer.name)
        analog = graph.input_code is None and any(p.source == INPUT for p in layer.inputs)
        if layer.spiking:
            G = spiking_layer(
                copies * layer.size, layer.code, name=name, dt=dt,
                window_input="I_in(t, i)" if analog else None, namespace={"I_in": None} if analog else None,
            )
        else:
            G = integrating_layer(copies * layer.size, T, name=name, dt=dt)
        G.b = np.tile(layer.bias, copies)
        groups[layer.name] = G
        if analog:
            input_group, input_size = G, layer.size
            continue
        for pi, proj in enumerate(layer.inputs):
            pre = groups[proj.source]
            n_pre = int(np.prod(graph.shape_of(proj.source)))
            syn_name = f"{name}_from{pi}"
            weight = "w : 1 (linked)\nwidx : integer (constant)" if shared_weights else "w : 1"
            S = layer_synapses(pre, G, name=syn_name, delay_steps=proj.delay_windows * T, weight=weight)
            spec = proj.as_conv(graph.shape_of(proj.source)) if generated else None
            if spec is not None:
                # connectivity and weight indices computed by Brian2's generated code: no
                # index arrays in Python or in the program, the kernel stored once
                table = _connect_conv(S, spec, copies, f"{syn_name}_weights")
                S.w = b2.linked_var(table, "w", index="widx")
                objects += [table, S]
                continue
            M = proj.matrix(graph.shape_of(proj.source)).tocoo()
            _connect(S, M, copies, n_pre, layer.size)
            if shared_weights:
                # one table of the projection's distinct weights, indexed per synapse: a conv
                # kernel (or a pooled conv's) is stored once for all positions and copies
                values, widx = np.unique(M.data, return_inverse=True)
                table = b2.NeuronGroup(len(values), "w : 1", name=f"{syn_name}_weights")
                table.w = values
                table.active = False  # data only, nothing to update
                S.widx = np.tile(widx.astype(np.int32), copies)
                S.w = b2.linked_var(table, "w", index="widx")
                objects.append(table)
            else:
                S.w = np.tile(M.data, copies)
            objects.append(S)
            del M
    for name, G in groups.items():
        if name == graph.output.name:
            continue
        monitors[name] = LayerMonitors.attach(G)
        objects += monitors[name].objects
    out = groups[graph.output.name]
    out_mon = b2.StateMonitor(out, "v", record=True, dt=T * dt, when="start", order=1, name="output_v")
    net = b2.Network(*groups.values(), *objects, out_mon)
    return _Built(net, groups, monitors, out_mon, input_group, input_size, copies, dict(graph.windows))


#: Synapses created per ``connect`` call: bounds the temporary index arrays of big builds.
CONNECT_CHUNK = 16_000_000


def _connect(S: b2.Synapses, M, copies: int, n_pre: int, n_post: int) -> None:
    """Connect ``copies`` copies of the sparse matrix ``M`` (post x pre), in chunks of copies."""
    per = max(1, CONNECT_CHUNK // max(M.nnz, 1))
    pre, post = M.col.astype(np.int64), M.row.astype(np.int64)
    for c0 in range(0, copies, per):
        offsets = np.arange(c0, min(copies, c0 + per), dtype=np.int64)
        S.connect(i=(offsets[:, None] * n_pre + pre).ravel(), j=(offsets[:, None] * n_post + post).ravel())


def _connect_conv(S: b2.Synapses, spec, copies: int, table_name: str) -> b2.NeuronGroup:
    """Connect ``S`` as the convolution ``spec`` (:class:`~.graph.ConvSpec`), in every copy,
    with Brian2's generator syntax, and set each synapse's ``widx`` by an expression of ``i``
    and ``j``; returns the table (a data-only group) holding the kernel, indexed by ``widx``.

    Presynaptic neuron ``i`` is ``(copy, c, y, x)`` of the source, postsynaptic ``j`` is
    ``(copy, o, oy, ox)``; for each ``k = (o, ky, kx)`` the tap reads input row
    ``y = oy*sh - ph + ky``, so ``i`` reaches ``oy = (y + ph - ky) / sh`` when that is a whole
    number inside the output (same for columns). The synapses are those of
    :func:`~.graph.conv2d_connectivity` (tested), created by compiled code in standalone mode.
    """
    C, H, W = spec.in_shape
    O, Ho, Wo = spec.out_shape
    kh, kw = spec.kernel.shape[2:]
    (sh, sw), (ph, pw) = spec.stride, spec.padding
    n_pre, n_post = C * H * W, O * Ho * Wo
    y, x = f"((i // {W}) % {H})", f"(i % {W})"
    ny, nx = f"({y} + {ph} - (k // {kw}) % {kh})", f"({x} + {pw} - k % {kw})"

    def inside(n, s, size):
        cond = f"{n} >= 0 and {n} < {size * s}"
        return cond + (f" and {n} % {s} == 0" if s > 1 else "")

    copy = f"(i // {n_pre}) * {n_post} + " if copies > 1 else ""
    element = f"{copy}(k // {kh * kw}) * {Ho * Wo} + ({ny} // {sh}) * {Wo} + {nx} // {sw}"
    condition = f"{inside(ny, sh, Ho)} and {inside(nx, sw, Wo)}"
    S.connect(j=f"{element} for k in range({O * kh * kw}) if {condition}")
    co, ci = f"((j // {Ho * Wo}) % {O})", f"((i // {H * W}) % {C})"
    ky = f"({y} + {ph} - ((j // {Wo}) % {Ho}) * {sh})"
    kx = f"({x} + {pw} - (j % {Wo}) * {sw})"
    S.widx = f"(({co} * {C} + {ci}) * {kh} + {ky}) * {kw} + {kx}"
    table = b2.NeuronGroup(spec.kernel.size, "w : 1", name=table_name)
    table.w = spec.kernel.reshape(-1)
    table.active = False  # data only, nothing to update
    return table


def _input_table(graph: Graph, x: np.ndarray, copies: int, slots: int) -> np.ndarray:
    """Rows: one per window (slot), plus a final row of zeros; columns: copy-major neurons."""
    if graph.input_code is not None:
        values = x.reshape(len(x), -1)
    else:
        layer = next(l for l in graph.layers if any(p.source == INPUT for p in l.inputs))
        values = layer.inputs[0].apply(x, graph.input_shape).reshape(len(x), -1) + layer.bias
    n = values.shape[1]
    table = np.zeros(((slots + 1) * copies, n))
    table[: len(values)] = values
    return table.reshape(slots + 1, copies * n)


def _collect(graph: Graph, built: _Built, n_inputs: int, slots: int, dt, record: set):
    T, B = graph.T, built.copies
    w_out = built.windows[graph.output.name]
    n_out = graph.output.size
    v = np.asarray(built.out_monitor.v[:])  # (copies * n_out, n_records)
    rows = np.arange(slots) + w_out + 1
    outputs = v[:, rows].reshape(B, n_out, slots).transpose(2, 0, 1).reshape(slots * B, n_out)[:n_inputs]
    counts, times = {}, {}
    for name, mon in built.monitors.items():
        size = int(np.prod(graph.shape_of(name)))
        per = np.zeros((n_inputs, 2), dtype=np.int64)
        want = name in record
        if want:
            times[name] = tuple(np.full((n_inputs, size), -1, dtype=np.int64) for _ in range(2))
        for col, m in enumerate((mon.spikes, mon.calibrations)):
            if m is None:
                continue
            idx = np.asarray(m.i[:], dtype=np.int64)
            window, step = spike_steps(m.t[:], dt, T)
            slot = window - built.windows[name]
            image = slot * B + idx // size
            ok = (slot >= 0) & (slot < slots) & (image < n_inputs)
            per[:, col] = np.bincount(image[ok], minlength=n_inputs)
            if want:
                times[name][col][image[ok], (idx % size)[ok]] = step[ok]
        counts[name] = per
    for name, idx in record.items():
        if idx is None:
            times[name] = tuple(t.reshape((n_inputs,) + graph.shape_of(name)) for t in times[name])
        else:
            times[name] = tuple(t[:, idx] for t in times[name])
    return outputs, counts, times


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

    Parameters
    ----------
    copies : int, optional
        Network copies simulated side by side (default: ``DEFAULT_COPIES``, fewer when the
        copies would exceed ``DEFAULT_SYNAPSE_BUDGET`` synapses, at most ``N``).
    target : str
        ``"numpy"`` (default), ``"cython"``, ``"cpp_standalone"`` (one program, all inputs
        in one run) or ``"cuda_standalone"`` (the same on a GPU through brian2cuda, see
        :mod:`scttfs_brian.brian.cuda`).
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
    if connectivity not in ("auto", "arrays", "generated"):
        raise ValueError(f"connectivity must be 'auto', 'arrays' or 'generated' (got {connectivity!r})")
    if connectivity == "auto":
        connectivity = "generated" if target in STANDALONE_TARGETS and shared_weights is not False else "arrays"
    if shared_weights is None:
        shared_weights = connectivity == "generated"
    if connectivity == "generated" and not shared_weights:
        raise ValueError(
            "connectivity='generated' stores each kernel once and indexes it per synapse: "
            "it needs shared_weights=True (or connectivity='arrays' for one weight per synapse)"
        )
    generated = connectivity == "generated"
    x = _check_inputs(graph, x)
    N = len(x)
    if N == 0:
        raise ValueError("x holds no inputs")
    copies = _copies(graph, N, copies)
    per_synapse = GENERATED_BYTES_PER_SYNAPSE if generated and target in STANDALONE_TARGETS else BYTES_PER_SYNAPSE
    need = _check_memory(graph, copies, N, per_synapse, memory_limit)
    record = graph.recording(record)
    T = graph.T
    w_out = graph.windows[graph.output.name]
    n_in_cols = max(1, int(need / max(copies, 1)))  # rough bytes per copy for the chunk bound
    if images_per_run is None:
        images_per_run = N if target in STANDALONE_TARGETS else max(copies, min(N, int(256e6 // (n_in_cols // 8 + 1)) * 1))
    images_per_run = max(copies, int(images_per_run))
    if target in STANDALONE_TARGETS:
        images_per_run = N
    chunks = [(s, min(N, s + images_per_run)) for s in range(0, N, images_per_run)]
    total_steps = sum(((-(-(e - s) // copies)) + w_out) * T + 1 for s, e in chunks)
    bar = _progress(total_steps, progress, f"Brian2 {target}, {copies} copies")
    outputs, counts, times = [], [], []
    timings = {"build": 0.0, "run": 0.0}
    memory: dict = {}
    with use_target(target):
        t0 = time.perf_counter()
        built = _build(graph, copies, dt, shared_weights, generated)
        if target not in STANDALONE_TARGETS:
            built.net.store("initial")
        timings["build"] = time.perf_counter() - t0
        for ci, (s, e) in enumerate(chunks):
            slots = -(-(e - s) // copies)
            steps = (slots + w_out) * T + 1
            built.input_group.namespace["I_in"] = b2.TimedArray(
                _input_table(graph, x[s:e], copies, slots), dt=T * dt, name="I_in"
            )
            if ci:
                built.net.restore("initial")
            t0 = time.perf_counter()
            done = bar.n
            if target in STANDALONE_TARGETS:  # compiled and executed here; reports are C++ text only
                with _measured_program(target) as measured:
                    built.net.run(steps * dt, namespace={})
            else:
                built.net.run(
                    steps * dt,
                    namespace={},
                    report=(lambda el, c, st, du, done=done, steps=steps: bar.update(done + int(c * steps) - bar.n)),
                    report_period=1 * b2.second,
                )
            bar.update(done + steps - bar.n)
            elapsed = time.perf_counter() - t0
            if target in STANDALONE_TARGETS and getattr(b2.get_device(), "_last_run_time", None) is not None:
                # code generation, compilation and the program all happen inside run()
                _standalone_timings(timings, memory, elapsed, measured)
            else:
                timings["run"] += elapsed
            o, c, tm = _collect(graph, built, e - s, slots, dt, record)
            outputs.append(o), counts.append(c), times.append(tm)
    bar.close()
    return _result(graph, outputs, counts, times, timings, memory)


def _copies(graph: Graph, n_inputs: int, copies: int | None) -> int:
    """The number of network copies for ``n_inputs`` inputs: ``copies`` checked, or the default
    (``DEFAULT_COPIES``, fewer when they would exceed ``DEFAULT_SYNAPSE_BUDGET`` synapses);
    never more than ``n_inputs``."""
    if copies is None:
        per_copy = max(synapses_per_copy(graph), 1)
        copies = int(max(1, min(n_inputs, DEFAULT_COPIES, DEFAULT_SYNAPSE_BUDGET // per_copy)))
    if not isinstance(copies, (int, np.integer)) or copies < 1:
        raise ValueError(f"copies must be a positive integer (got {copies!r})")
    return int(min(copies, n_inputs))


def _check_memory(graph: Graph, copies: int, n_inputs: int, per_synapse: int, memory_limit: int | None) -> int:
    """Refuse with :class:`BuildTooLarge` a build estimated above ``memory_limit`` (default: 80%
    of the memory available now); returns the estimate."""
    limit = memory_limit if memory_limit is not None else int(0.8 * psutil.virtual_memory().available)
    need = estimate_memory(graph, copies, n_inputs, per_synapse)
    if need > limit:
        fit = max(0, int(copies * limit / need))
        raise BuildTooLarge(
            f"a Brian2 build with {copies} network copies needs about {need / 2**30:.2f} GiB "
            f"({copies * synapses_per_copy(graph):,} synapses x {per_synapse} B, plus neurons and inputs), "
            f"but only {limit / 2**30:.2f} GiB may be used; "
            + (f"use copies={fit} or fewer" if fit else "this network does not fit even as a single copy")
        )
    return need


def _result(graph: Graph, outputs: list, counts: list, times: list, timings: dict, memory: dict) -> SimulationResult:
    """One result from the per-chunk (or per-batch) pieces of :func:`_collect`."""
    out = np.concatenate(outputs)
    return SimulationResult(
        outputs=out,
        predictions=out.argmax(axis=1),
        spike_counts={k: np.concatenate([c[k] for c in counts]) for k in counts[0]},
        latency_steps=graph.latency_steps,
        spike_times={k: tuple(np.concatenate([t[k][j] for t in times]) for j in range(2)) for k in times[0]},
        backend="brian2",
        timings=timings,
        memory=memory,
    )


@contextlib.contextmanager
def _measured_program(target: str):
    """Run the standalone program through :mod:`._program` (wall time and peak memory written
    to a JSON file in the project directory); yields whether it is wrapped (not for
    cuda_standalone, nor on Windows)."""
    if target != "cpp_standalone" or os.name == "nt":
        yield False
        return
    prefs = b2.prefs.devices.cpp_standalone
    old = prefs.run_cmd_unix
    prefs.run_cmd_unix = _program.command([old] if isinstance(old, str) else old)
    try:
        yield True
    finally:
        prefs.run_cmd_unix = old


def _standalone_timings(timings: dict, memory: dict, elapsed: float, measured: bool) -> None:
    """Split the wall time of a standalone ``run()`` into code generation, compilation, the
    program's setup (loading arrays, creating synapses) and its simulation loop."""
    device = b2.get_device()
    run = float(device._last_run_time)
    make = float(getattr(device, "timers", {}).get("compile", {}).get("make") or 0.0)
    program = float(getattr(device, "timers", {}).get("run_binary") or 0.0)
    timings["run"] += run
    timings["compile"] = timings.get("compile", 0.0) + make
    timings["codegen"] = timings.get("codegen", 0.0) + max(0.0, elapsed - make - program)
    timings["setup"] = timings.get("setup", 0.0) + max(0.0, program - run)
    usage = _program.read_usage(device.project_dir) if measured else None
    if usage is not None:
        memory["program_peak_rss_bytes"] = int(usage["peak_rss_bytes"])


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="step", leave=False)


# --------------------------------------------------------------------------------------------
# A compiled program, run again for every batch
# --------------------------------------------------------------------------------------------
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

    def __init__(self, graph: Graph, batch_size: int, copies: int, dt, directory: str, keep: bool,
                 files: dict, slots: int, timings: dict):
        self.graph, self.batch_size, self.copies, self.dt = graph, batch_size, copies, dt
        self.directory, self._keep, self._files = directory, keep, files
        self._slots = slots  # input windows per copy in every run (the program's fixed table)
        self.build_timings = timings
        self.runs = 0

    def __enter__(self) -> StandaloneProgram:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Delete the build directory (if it was a temporary one)."""
        if not self._keep and self.directory and os.path.isdir(self.directory):
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def simulate(self, x: Any, *, record: Any = (), progress: bool = True) -> SimulationResult:
        """Simulate inputs ``x`` (any number: batches of ``batch_size``, one program run each);
        same result as :func:`simulate` with ``target="cpp_standalone"``."""
        if self.directory is None:
            raise RuntimeError("this program was closed; compile it again with compile_program(...)")
        graph = self.graph
        x = _check_inputs(graph, x)
        if len(x) == 0:
            raise ValueError("x holds no inputs")
        record = graph.recording(record)
        for name in record:
            if name not in self._files["monitors"]:
                raise ValueError(f"population {name!r} has no monitor in this program")
        outputs, counts, times = [], [], []
        timings = {"setup": 0.0, "run": 0.0}
        memory: dict = {}
        batches = range(0, len(x), self.batch_size)
        bar = _progress(len(batches), progress and len(batches) > 1, "Brian2 cpp_standalone program runs")
        for s in batches:
            xb = x[s : s + self.batch_size]
            table = _input_table(graph, xb, self.copies, self._slots)
            program_s, run_s, peak = self._run(table)
            timings["run"] += run_s
            timings["setup"] += max(0.0, program_s - run_s)
            memory["program_peak_rss_bytes"] = max(memory.get("program_peak_rss_bytes", 0), peak)
            built = self._results()
            o, c, tm = _collect(graph, built, len(xb), -(-len(xb) // self.copies), self.dt, record)
            outputs.append(o), counts.append(c), times.append(tm)
            bar.update(1)
        bar.close()
        return _result(graph, outputs, counts, times, timings, memory)

    def _run(self, table: np.ndarray) -> tuple[float, float, int]:
        import subprocess

        path = os.path.join("static_arrays", "scttfs_batch_input.dat")
        np.ascontiguousarray(table, dtype=np.float64).tofile(os.path.join(self.directory, path))
        cmd = _program.command(["./main", f"{self._files['input']}.values={path}"])
        done = subprocess.run(cmd, cwd=self.directory, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(
                f"the compiled program failed (exit status {done.returncode}) in {self.directory}:\n"
                + (done.stdout + done.stderr)[-2000:]
            )
        self.runs += 1
        u = _program.read_usage(self.directory)
        with open(os.path.join(self.directory, "results", "last_run_info.txt")) as f:
            run_s = float(f.read().split()[0])
        return float(u["wall_s"]), run_s, int(u["peak_rss_bytes"])

    def _results(self) -> _Built:
        from types import SimpleNamespace

        res = os.path.join(self.directory, "results")

        def read(entry):
            name, dtype = entry
            return np.fromfile(os.path.join(res, name), dtype=dtype)

        monitors = {}
        for name, mons in self._files["monitors"].items():
            ev = [None if m is None else SimpleNamespace(i=read(m["i"]), t=read(m["t"])) for m in mons]
            monitors[name] = SimpleNamespace(spikes=ev[0], calibrations=ev[1])
        v = read(self._files["output"]).reshape(-1, self._files["n_output"]).T
        return _Built(None, {}, monitors, SimpleNamespace(v=v), None, 0, self.copies, dict(self.graph.windows))


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
    :func:`simulate` (at most ``batch_size``); ``directory`` keeps the build there (default: a
    temporary directory deleted by ``close()``). Results are those of :func:`simulate`."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
    if connectivity not in ("arrays", "generated"):
        raise ValueError(f"connectivity must be 'arrays' or 'generated' (got {connectivity!r})")
    generated = connectivity == "generated"
    if generated and not shared_weights:
        raise ValueError("connectivity='generated' needs shared_weights=True")
    copies = _copies(graph, batch_size, copies)
    _check_memory(graph, copies, batch_size, GENERATED_BYTES_PER_SYNAPSE if generated else BYTES_PER_SYNAPSE, memory_limit)
    import tempfile

    keep = directory is not None
    directory = os.path.abspath(directory) if keep else tempfile.mkdtemp(prefix="scttfs_program_")
    T, w_out = graph.T, graph.windows[graph.output.name]
    slots = -(-batch_size // copies)
    steps = (slots + w_out) * T + 1
    timings: dict = {}
    from .targets import standalone_device

    t0 = time.perf_counter()
    with standalone_device("cpp_standalone", directory, build_on_run=False) as built_in:
        built = _build(graph, copies, dt, shared_weights, generated)
        # a placeholder of every batch's table shape (the values are replaced at each run)
        empty = np.zeros_like(_input_table(graph, np.zeros((1,) + graph.input_shape), copies, slots))
        built.input_group.namespace["I_in"] = b2.TimedArray(empty, dt=T * dt, name="I_in")
        built.net.run(steps * dt, namespace={})
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
