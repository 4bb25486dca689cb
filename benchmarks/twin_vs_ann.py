"""Inference time of the torch twin vs the plain ANN it was converted from, on CPU.

The requirement: the default twin, ``snn.functional(x, dtype=torch.float32)`` (``compiled="auto"``:
large layers compiled, small ones eager), within x1.5 of the plain eager float32 ANN, at batch 128,
on the digits CNN (``models.DigitsCNN``, 1x8x8), VGG16 and ResNet20 (3x32x32), random weights in
eval mode, ``torch.set_num_threads(2)``. The twin is ``convert(model, shape,
code=SCTTFSCode(T=6, *PRESETS['cifar10']))``; besides the default, ``compiled=False`` (eager) and
``compiled=True`` are timed, and the ANN under ``torch.compile`` for reference.

Each path runs in its own fresh process (``GROUPS``: eager, default, compiled; running
``torch.compile`` changes how the process's allocator maps memory, and with it the speed of its
eager ops: see the report's "The eager ANN in each process"), and each process times the eager
ANN too: a ratio divides by the ANN of the same process. In a process
the variants are called once (compilation happens there, not timed; its time is reported), once
more to warm up, then in ``--repeat`` rounds in a rotating order (so machine load hits them
alike), and the medians are that process's times. The whole set of processes is repeated
``--repetitions`` times, interleaved (repetition 1: every model's eager, default and compiled
process; then repetition 2; ...), and the median and range over the repetitions of each ratio
are reported, with the machine, its load average at the start and end of every process and of
the whole run. The ratio is what to compare; absolute times move with the machine's load.

For reference, in the first repetition's eager process, timed once after a warm-up: the float64
twin (the spike-exact path against Brian2) and the float32 twin through the T-step stepwise loop
(``method="stepwise"``: the library's path before the codebook lookup, still its fallback), and
where the eager twin's time goes (wrapping the lookup's public functions ``word_lookup`` and
``all_finite`` for one call). The default's process also records which layers
``compiled="auto"`` compiles at this batch (``scttfs_brian.torch.lookup.AUTO_COMPILE_MIN``
potentials per call over the network's spiking layers, ``AUTO_COMPILE_MAX_BOUNDS`` boundaries), whether ``torch.compile`` worked
(``lookup.COMPILE_STATE``) and any warning (a fallback to the eager lookup warns).

The twin's spiking layers use the codebook lookup of ``scttfs_brian.torch.lookup``: the code's
spike times are a monotone step function of the potential, so the code's boundaries
(``coding.spike_boundaries``, derived once per code and dtype by bisection over every float, the
stepwise rule deciding) turn the T-step loop into "how many boundaries are <= v" and per-word
tables. Eager that is one ``torch.bucketize`` and gathers; ``compiled=True`` fuses the bias add,
one comparison per boundary (each selecting the next word's values), the spike counts and the
average poolings that the next layers start with into one call per layer
(``scttfs_brian.torch.compiled_lookup``).

    .venv/bin/python benchmarks/twin_vs_ann.py [--repetitions 3] [--repeat 5] [--models vgg16 ...]
    .venv/bin/python benchmarks/twin_vs_ann.py --quick      # smoke test: digits CNN, 2 x 1 round
    .venv/bin/python benchmarks/twin_vs_ann.py --report-only  # the .md again from the .json

Writes benchmarks/results/twin_vs_ann.md and .json (``--quick``: printed, written only where
``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from _common import (  # noqa: E402
    host,
    load_average,
    machine,
    peak_rss_mib,
    run_in_fresh_process,
    write_atomic,
    write_json_atomic,
)

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {"digits-cnn": (1, 8, 8), "vgg16": (3, 32, 32), "resnet20": (3, 32, 32)}
T = 6
TARGET_RATIO = 1.5


def build(name: str):
    import torch

    from scttfs_brian import models

    torch.manual_seed(0)
    model = {"digits-cnn": models.DigitsCNN, "vgg16": models.vgg16, "resnet20": models.resnet20}[name]()
    return model.eval()


def _load() -> float:
    return os.getloadavg()[0]


class _Timer:
    """Wraps functions to add up the wall time spent in them (one process, synchronous CPU ops)."""

    def __init__(self):
        self.total: dict[str, float] = {}

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - t0

        return timed


#: A timed sample is at least this long: calls are repeated within it (``timeit``'s autorange), so
#: a model that runs in a few milliseconds is not timed by one call against the clock's and the
#: scheduler's jitter.
MIN_SAMPLE_S = 0.05


def _median_times(variants: dict, repeat: int) -> tuple[dict[str, float], dict]:
    """One warm-up call per variant (``fn(True)``: its result is kept, e.g. with spike times
    recorded), one untimed call to size the samples, then ``repeat`` rounds of ``fn(False)`` in a
    rotating order, each sample ``n`` calls (at least :data:`MIN_SAMPLE_S`); medians of the
    per-call times (s)."""
    import math

    warm = {k: fn(True) for k, fn in variants.items()}
    calls = {}
    for k, fn in variants.items():
        t0 = time.perf_counter()
        fn(False)
        calls[k] = max(1, math.ceil(MIN_SAMPLE_S / max(time.perf_counter() - t0, 1e-6)))
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(repeat):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(calls[k]):
                variants[k](False)
            times[k].append((time.perf_counter() - t0) / calls[k])
    return {k: statistics.median(v) for k, v in times.items()}, warm


def _minor_faults_per_call(fn, calls: int = 20) -> float:
    """Minor page faults of this process per call of ``fn`` (after the timed rounds): memory the
    allocator maps afresh on every call instead of reusing it."""
    import resource

    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn(False)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / calls


def _same(a, b) -> bool:
    """Outputs, recorded spike times and spike counts equal."""
    import torch

    return bool(
        torch.equal(a.output, b.output)
        and set(a.spike_times) == set(b.spike_times)
        and all(
            torch.equal(a.spike_times[p][j], b.spike_times[p][j]) for p in b.spike_times for j in range(2)
        )
        and set(a.spike_counts) == set(b.spike_counts)
        and all(torch.equal(a.spike_counts[p], b.spike_counts[p]) for p in b.spike_counts)
    )


#: The processes of one model: running torch.compile changes the speed of the eager ops of its
#: process after it (glibc's allocator stops returning and re-faulting the memory of each call:
#: see the report's "The eager ANN in each process"), so eager variants never share a process with
#: compiled ones. Each group times the eager ANN too: ratios divide by the ANN of their process.
GROUPS = {
    "eager": ("ann_f32", "twin_f32"),
    "default": ("ann_f32", "twin_f32_default"),
    "compiled": ("ann_f32", "ann_f32_compiled", "twin_f32_compiled"),
}


def measure(name: str, batch: int, repeat: int, threads: int, group: str, references: bool, queue) -> None:
    """One process of :data:`GROUPS`: its variants timed against the eager ANN (see the module
    docstring); ``references``: the eager group also times the float64 twin and the stepwise loop
    and breaks the eager twin's time down. Puts a dict on ``queue``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # each warning once per place: a fallback shows up here
        out = _measure(name, batch, repeat, threads, group, references)
    out["warnings"] = {  # libraries' deprecation notices left out
        group: sorted(
            {
                f"{w.category.__name__}: {str(w.message)[:300]}"
                for w in caught
                if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
            }
        )
    }
    queue.put(out)


def _measure(name: str, batch: int, repeat: int, threads: int, group: str, references: bool) -> dict:
    from unittest import mock

    import torch

    from scttfs_brian import PRESETS, SCTTFSCode, convert
    from scttfs_brian import torch as engine
    from scttfs_brian.torch import lookup

    torch.set_num_threads(threads)
    load_start = _load()
    shape = MODELS[name]
    model = build(name)
    t0 = time.perf_counter()
    snn = convert(model, shape, code=SCTTFSCode(T, *PRESETS["cifar10"]))
    convert_s = time.perf_counter() - t0
    graph = snn.graph
    g = torch.Generator().manual_seed(1)
    x = (
        torch.rand(batch, *shape, generator=g)
        if name == "digits-cnn"
        else torch.randn(batch, *shape, generator=g)
    )

    def ann(record):
        with torch.no_grad():
            return model(x)

    def twin(**run_kwargs):
        def fn(record):
            return engine.run(graph, x, record=record, **{"dtype": torch.float32, **run_kwargs})

        return fn

    def default(record):  # what a user calls (compiled="auto" by default), in float32
        return snn.functional(x, dtype=torch.float32, record=record)

    def loop(dtype):  # the T-step loop instead of the codebook lookup
        def fn(record):
            return engine.run(graph, x, record=record, dtype=dtype, method="stepwise")

        return fn

    all_variants = {
        "ann_f32": ann,
        "twin_f32": twin(compiled=False),
        "twin_f32_default": default,
        "twin_f32_compiled": twin(compiled=True),
    }
    if group == "compiled":
        compiled_model = torch.compile(model)

        def ann_compiled(record):
            with torch.no_grad():
                return compiled_model(x)

        all_variants["ann_f32_compiled"] = ann_compiled
    variants = {k: all_variants[k] for k in GROUPS[group]}
    eager_out = all_variants["twin_f32"](True)  # before anything compiles; not timed here
    t0 = time.perf_counter()
    first = {}
    for k, fn in variants.items():  # first call: boundaries derived, kernels compiled
        t1 = time.perf_counter()
        fn(False)
        first[k] = time.perf_counter() - t1
    med, warm = _median_times(variants, repeat)
    rounds_s = time.perf_counter() - t0
    faults = {k: _minor_faults_per_call(fn) for k, fn in variants.items()}
    out = dict(first_call_s=first, median_s=med, ratio={k: v / med["ann_f32"] for k, v in med.items()})
    out["identical"] = {
        f"{k.rsplit('_', 1)[1]} vs eager": _same(warm[k], eager_out)
        for k in ("twin_f32_default", "twin_f32_compiled")
        if k in warm
    }
    if group == "default":
        out["auto_layers"] = _auto_layers(lookup, graph, batch)
        out["compile_state"] = {group: {k: bool(v) for k, v in lookup.COMPILE_STATE.items()}}
    if group == "eager" and references:
        # references, once after a warm-up: float64 twin, and the float32 stepwise loop
        ref, warm_ref = _median_times(
            {"twin_f64": twin(dtype=torch.float64, compiled=False), "loop_f32": loop(torch.float32)}, 1
        )
        out["reference_s"] = ref
        out["ratio"].update({k: v / med["ann_f32"] for k, v in ref.items()})
        out["identical"]["eager vs loop"] = _same(eager_out, warm_ref["loop_f32"])
        out["breakdown_eager_f32"] = _breakdown_eager(engine, lookup, mock, graph, x)
        counts = eager_out.spike_counts
        neurons = sum(int(torch.tensor(graph.shape_of(k)).prod()) for k in counts)
        out.update(
            input_shape=list(shape),
            spiking_layers=len(graph.spiking_layers),
            spiking_neurons=neurons,
            spikes_per_neuron=float(sum(c.sum() for c in counts.values()) / (batch * neurons)),
            convert_s=convert_s,
        )
    out.update(
        minor_faults_per_call={group: faults},
        rounds_s={group: rounds_s},
        peak_rss_mib={group: peak_rss_mib()},
        load_avg_1min={group: [load_start, _load()]},
        ann_f32_s={group: med["ann_f32"]},
    )
    return out


def _auto_layers(lookup, graph, batch: int) -> list[dict]:
    """Which spiking populations ``compiled="auto"`` compiles at this batch: every one whose code
    has at most ``AUTO_COMPILE_MAX_BOUNDS`` float32 boundaries, when the network's spiking
    populations hold at least ``AUTO_COMPILE_MIN`` potentials per call together (the rule of
    ``scttfs_brian.torch.GraphModule`` and ``lookup.encode_layer``'s ``auto_size``)."""
    import math

    import torch

    codes = graph.codes()
    sizes = {pop: batch * math.prod(graph.shape_of(pop)) for pop in codes}
    network = sum(sizes.values())
    rows = []
    for pop, code in codes.items():
        bounds = len(lookup.boundaries(code, torch.float32).bounds)
        compiled = network >= lookup.AUTO_COMPILE_MIN and bounds <= lookup.AUTO_COMPILE_MAX_BOUNDS
        rows.append(dict(population=pop, potentials=sizes[pop], network_potentials=network, bounds=bounds,
                         compiled=compiled))  # fmt: skip
    return rows


def _breakdown_eager(engine, lookup, mock, graph, x) -> dict:
    """Where the eager float32 twin's time goes: wrap what GraphModule.forward calls (one call)."""
    import torch

    module = engine.GraphModule(graph, torch.float32, compiled=False)
    timer = _Timer()
    with (
        mock.patch.object(lookup, "word_lookup", timer.wrap("codebook lookup + counts", lookup.word_lookup)),
        mock.patch.object(lookup, "all_finite", timer.wrap("finiteness check (aminmax)", lookup.all_finite)),
        torch.no_grad(),
    ):
        t0 = time.perf_counter()
        module(x)
        wrapped_total = time.perf_counter() - t0
    breakdown = {k: v / wrapped_total for k, v in timer.total.items()}
    breakdown["affine ops and the rest"] = max(0.0, 1.0 - sum(breakdown.values()))
    return breakdown


#: The timed variant of each process (besides its eager ANN), by group.
TIMED = {"eager": "twin_f32", "default": "twin_f32_default", "compiled": "twin_f32_compiled"}
#: Every float32 variant whose ratio is reported, in table order.
VARIANTS = ("twin_f32_default", "twin_f32", "twin_f32_compiled", "ann_f32_compiled")


def run_repetition(name: str, batch: int, repeat: int, threads: int, references: bool) -> dict:
    """One repetition of one model: each group of :data:`GROUPS` in a fresh process, in order.
    Returns ``{group: what its process measured}``."""
    return {
        group: run_in_fresh_process(measure, name, batch, repeat, threads, group, references)
        for group in GROUPS
    }


def _spread(values: list[float]) -> dict:
    return dict(median=statistics.median(values), min=min(values), max=max(values), all=list(values))


def merge_repetitions(name: str, reps: list[dict], batch: int, repeat: int, threads: int) -> dict:
    """One model's row: per variant the median over repetitions of each process's median time
    and ratio (``median_s``, ``ratio``), their range and every value (``median_s_spread``,
    ``ratio_spread``); the eager ANN's time is the eager process's. References, breakdown and
    first-call times come from the first repetition; ``identical`` must hold in every process."""
    row = dict(model=name, batch=batch, threads=threads, T=T, repeat=repeat, repetitions=len(reps))
    group_of = {"ann_f32": "eager", **{v: g for g, v in TIMED.items()}, "ann_f32_compiled": "compiled"}
    row["median_s_spread"] = {v: _spread([r[g]["median_s"][v] for r in reps]) for v, g in group_of.items()}
    row["ratio_spread"] = {
        v: _spread([r[g]["ratio"][v] for r in reps]) for v, g in group_of.items() if v != "ann_f32"
    }
    row["median_s"] = {v: d["median"] for v, d in row["median_s_spread"].items()}
    row["ratio"] = {v: d["median"] for v, d in row["ratio_spread"].items()}
    row["ann_f32_s_by_process"] = {g: [r[g]["median_s"]["ann_f32"] for r in reps] for g in GROUPS}
    row["minor_faults_per_call"] = {g: [r[g]["minor_faults_per_call"][g] for r in reps] for g in GROUPS}
    row["load_avg_1min"] = [{g: r[g]["load_avg_1min"][g] for g in GROUPS} for r in reps]
    row["peak_rss_mib"] = {g: max(r[g]["peak_rss_mib"][g] for r in reps) for g in GROUPS}
    row["identical"] = {}
    for r in reps:
        for g in GROUPS:
            for k, v in r[g]["identical"].items():
                row["identical"][k] = row["identical"].get(k, True) and v
    row["first_call_s"] = {v: reps[0][g]["first_call_s"][v] for v, g in group_of.items()}
    row["warnings"] = sorted({w for r in reps for g in GROUPS for w in r[g]["warnings"][g]})
    row["compile_state"] = [r["default"]["compile_state"]["default"] for r in reps]
    row["auto_layers"] = reps[0]["default"]["auto_layers"]
    first = reps[0]["eager"]
    for k in ("reference_s", "breakdown_eager_f32", "input_shape", "spiking_layers", "spiking_neurons",
              "spikes_per_neuron", "convert_s"):  # fmt: skip
        row[k] = first[k]
    row["ratio"].update({k: first["ratio"][k] for k in first["reference_s"]})
    row["speedup_vs_loop"] = {v: row["reference_s"]["loop_f32"] / row["median_s"][v] for v in TIMED.values()}
    return row


def _ratio(r: dict, v: str) -> str:
    d = r["ratio_spread"][v]
    return f"x{d['median']:.2f} ({d['min']:.2f} - {d['max']:.2f})"


def _verdict(r: dict) -> str:
    d = r["ratio_spread"]["twin_f32_default"]
    if d["max"] <= TARGET_RATIO:
        return "met (every repetition)"
    if d["median"] <= TARGET_RATIO:
        return "met by the median, not in every repetition"
    if r["ratio"]["twin_f32_compiled"] <= TARGET_RATIO:
        return "**not met** by the default; met with compiled=True"
    return "**not met**"


def _table(rows: list[dict]) -> list[str]:
    md = [
        "| model | input | spiking layers | layers the default compiles | ANN f32 (ms) | twin default (ms) "
        "| ratio default | ratio eager | ratio compiled=True | ratio ANN compiled "
        "| compiled twin / compiled ANN | target: default <= x1.5 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        m = r["median_s"]
        auto = r["auto_layers"]
        md.append(
            f"| {r['model']} | {'x'.join(map(str, r['input_shape']))} | {r['spiking_layers']} | "
            f"{sum(a['compiled'] for a in auto)} of {len(auto)} | {1e3 * m['ann_f32']:.1f} | "
            f"{1e3 * m['twin_f32_default']:.1f} | {_ratio(r, 'twin_f32_default')} | {_ratio(r, 'twin_f32')} | "
            f"{_ratio(r, 'twin_f32_compiled')} | {_ratio(r, 'ann_f32_compiled')} | "
            f"x{m['twin_f32_compiled'] / m['ann_f32_compiled']:.2f} | {_verdict(r)} |"
        )
    return md


def _repetitions(rows: list[dict]) -> list[str]:
    md = [
        "| model | repetition | process | 1-min load, start -> end | eager ANN (ms) | twin (ms) | ratio |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        for i in range(r["repetitions"]):
            for g, v in TIMED.items():
                a, b = r["load_avg_1min"][i][g]
                md.append(
                    f"| {r['model']} | {i + 1} | {g} | {a:.2f} -> {b:.2f} | "
                    f"{1e3 * r['ann_f32_s_by_process'][g][i]:.1f} | "
                    f"{1e3 * r['median_s_spread'][v]['all'][i]:.1f} | x{r['ratio_spread'][v]['all'][i]:.2f} |"
                )
    return md


def _ann_by_process(rows: list[dict]) -> list[str]:
    """The same eager ANN call in each kind of process, its page faults, and the default twin
    against the ANN of the eager processes."""
    md = [
        "| model | eager ANN (ms): eager / default / compiled process | minor page faults per ANN call: "
        "eager / default / compiled process | minor page faults per default twin call, median (min - max) | "
        "default twin / ANN of the eager process |",
        "|---|---|---|---:|---:|",
    ]
    for r in rows:
        ann = {g: statistics.median(v) for g, v in r["ann_f32_s_by_process"].items()}
        faults = r.get("minor_faults_per_call")
        if faults is None:  # results written before the page faults were counted
            continue
        f = {g: statistics.median(x["ann_f32"] for x in faults[g]) for g in GROUPS}
        twin = [x["twin_f32_default"] for x in faults["default"]]
        md.append(
            f"| {r['model']} | {' / '.join(f'{1e3 * ann[g]:.2f}' for g in GROUPS)} | "
            f"{' / '.join(f'{f[g]:.0f}' for g in GROUPS)} | {statistics.median(twin):.0f} "
            f"({min(twin):.0f} - {max(twin):.0f}) | x{r['median_s']['twin_f32_default'] / ann['eager']:.2f} |"
        )
    return md


def _twin_faults(rows: list[dict]) -> list[str]:
    """Per model: the default twin's page faults and ratio in each repetition's process."""
    lines = []
    for r in rows:
        faults = r.get("minor_faults_per_call")
        if faults is None:
            continue
        pairs = ", ".join(
            f"x{ratio:.2f} with {x['twin_f32_default']:.0f}"
            for ratio, x in zip(r["ratio_spread"]["twin_f32_default"]["all"], faults["default"])
        )
        lines.append(f"* {r['model']}: {pairs} faults per call.")
    return lines


def _auto(rows: list[dict]) -> list[str]:
    md = []
    for r in rows:
        layers = ", ".join(
            f"{a['population']} {a['potentials']:,}{' (compiled)' if a['compiled'] else ''}"
            for a in r["auto_layers"]
        )
        state = "; ".join(sorted({", ".join(f"{k}: {'works' if v else 'failed'}" for k, v in c.items()) or "not tried"
                                 for c in r["compile_state"]}))  # fmt: skip
        md.append(f"* {r['model']}: potentials per call {layers}. torch.compile under the default: {state}.")
        md += [f"  Warning: {w}" for w in r["warnings"]]
    return md


def _references(rows: list[dict]) -> list[str]:
    md = [
        "| model | twin f64 eager (ms, ratio) | twin f32 stepwise loop (ms, ratio) | speed-up eager / compiled vs loop "
        "| identical: eager = loop, compiled = eager, default = eager "
        "| first calls (s): twin eager, twin default, twin compiled, ANN compiled |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ref, q, s, f = r["reference_s"], r["ratio"], r["speedup_vs_loop"], r["first_call_s"]
        same = r["identical"]
        md.append(
            f"| {r['model']} | {1e3 * ref['twin_f64']:.1f}, x{q['twin_f64']:.2f} | "
            f"{1e3 * ref['loop_f32']:.1f}, x{q['loop_f32']:.2f} | x{s['twin_f32']:.1f} / x{s['twin_f32_compiled']:.1f} | "
            f"{'yes' if same['eager vs loop'] else '**no**'}, {'yes' if same['compiled vs eager'] else '**no**'}, "
            f"{'yes' if same['default vs eager'] else '**no**'} | "
            f"{f['twin_f32']:.1f}, {f['twin_f32_default']:.1f}, {f['twin_f32_compiled']:.1f}, {f['ann_f32_compiled']:.1f} |"
        )
    return md


def _breakdown(rows: list[dict]) -> list[str]:
    keys = ["affine ops and the rest"] + sorted(
        {k for r in rows for k in r["breakdown_eager_f32"]} - {"affine ops and the rest"}
    )
    md = ["| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for r in rows:
        cells = " | ".join(
            f"{100 * r['breakdown_eager_f32'][k]:.0f}%" if k in r["breakdown_eager_f32"] else "-"
            for k in keys
        )
        md.append(f"| {r['model']} | {cells} |")
    return md


def report(result: dict) -> list[str]:
    """The markdown report (lines) of a result (:func:`main`'s JSON): written with it, and again
    from the committed JSON by ``--report-only``."""
    rows = result["rows"]
    r0 = rows[0]
    met = [r["model"] for r in rows if r["ratio"]["twin_f32_default"] <= TARGET_RATIO]
    missed = [r["model"] for r in rows if r["model"] not in met]
    cores = os.cpu_count() or 1
    quiet = result['load_average_start'][0] < 0.25 * cores
    return [
        "# Torch twin vs plain ANN: inference time on CPU",
        "",
        f"Machine: {result['machine']}; host {result['host']}. torch.set_num_threads({r0['threads']}), batch {r0['batch']}, random",
        f"weights, eval mode. Command: `{result['command']}` ({result['wall_s'] / 60:.1f} min).",
        "",
        f"Machine load (`os.getloadavg`, 1 / 5 / 15 min, {cores} cores): at the start "
        f"{', '.join(f'{v:.2f}' for v in result['load_average_start'])}, at the end {', '.join(f'{v:.2f}' for v in result['load_average_end'])};"
        f" the machine was {'quiet' if quiet else '**not quiet**'} at the start (1-min load "
        f"{'below' if quiet else 'at or above'} a quarter of its cores). The 1-minute load at the start and end "
        "of every process is in the last table.",
        "",
        'The requirement: the default twin, `snn.functional(x, dtype=torch.float32)` (`compiled="auto"`: compiled',
        "where the network's spiking layers hold at least `AUTO_COMPILE_MIN` potentials per call, else eager), within x1.5 of the plain",
        f"eager float32 ANN. The twin is `convert(model, shape, code=SCTTFSCode(T={T}, *PRESETS['cifar10']))`;",
        "`compiled=False` (eager) and `compiled=True` (`scttfs_brian.torch.run(graph, x, dtype=torch.float32,",
        "compiled=...)`) are shown too, and the ANN under `torch.compile`. Each path runs in its own fresh process",
        "(eager, default, compiled: running `torch.compile` changes the speed of the eager ops of its process,",
        "see \"The eager ANN in each process\"), each timing the eager",
        "ANN too; in each the variants are called once (compilation, not timed: see the first calls below), once",
        f"more to warm up, then in {r0['repeat']} rounds in a rotating order, each round timing as many calls as fill {MIN_SAMPLE_S} s; a process's time is the median of its",
        f"rounds and its ratio divides by its own eager ANN. The set of processes ran {r0['repetitions']} times,",
        "interleaved (every model's three processes, then again); each cell shows the median ratio over the",
        "repetitions and its range (min - max). The ANN and twin times shown are medians over the repetitions.",
        "",
        f"Target (default twin / plain eager ANN <= x{TARGET_RATIO}, median over repetitions): "
        + (f"met for {', '.join(met)}" if met else "")
        + ("; " if met and missed else "")
        + (f"**not met** for {', '.join(missed)}" if missed else "")
        + ".",
        "",
        *_table(rows),
        "",
        "## The eager ANN in each process",
        "",
        "The same eager ANN call is faster in a process where `torch.compile` has run (any compiled",
        "function, even with dynamo's `eager` backend) than in a fresh one. The page faults show where the",
        "difference is: in a fresh process the ANN's intermediate tensors (a few hundred KiB to a few MiB) are",
        "mapped and faulted in afresh on every call, after `torch.compile` they are reused (consistent with",
        "glibc's dynamic mmap and trim thresholds, which rise once a larger block has been freed; the large",
        "networks' tensors are above them in every process). So each",
        "ratio above divides by the ANN of its own process (the same allocator state for both); the last column",
        "divides the default twin by the ANN of the eager processes instead (medians over repetitions; counted",
        "after the timed rounds, 20 calls).",
        "",
        *_ann_by_process(rows),
        "",
        "The twin's own page faults vary from process to process too: whether glibc hands the memory a call",
        "freed back to the system (and the next call faults it in again) depends on what the process allocated",
        "before. The default twin's ratio and its faults per call (counted after the timed rounds, so not",
        "necessarily in the state the rounds ran in) in each repetition's process:",
        "",
        *_twin_faults(rows),
        "",
        "## What the default compiles",
        "",
        f'Potentials per call of each spiking population at batch {r0["batch"]}; `compiled="auto"` compiles, when the',
        "network's populations hold at least `scttfs_brian.torch.lookup.AUTO_COMPILE_MIN` (2^19 = 524,288) together,",
        "those whose code has at most `AUTO_COMPILE_MAX_BOUNDS` boundaries, and runs the others through the eager lookup. Where",
        "`torch.compile` fails it warns once and runs everything eagerly (a warning would be listed here).",
        "",
        *_auto(rows),
        "",
        "## How the twin gets there",
        "",
        "Each spiking layer maps its potentials to codewords with the code's boundaries",
        "(`coding.spike_boundaries`, derived once per code and dtype by bisection over every float of the dtype,",
        "the stepwise rule itself deciding, then checked at every boundary and its float neighbours, +-0, +-max,",
        "+-inf and NaN). Eager: one `torch.bucketize` over the boundaries, gathers of the decoded value (and spike",
        "times when recorded), the spike counts from one `bincount` of (sample, word), and one `aminmax` pass",
        "(non-finite potentials go through the stepwise loop). `compiled=True`: the bias add, one comparison",
        "per boundary, each selecting the next word's decoded value (and spike times when recorded, and the",
        "calibration flag for the counts: no index, no gather), the counts, and the average poolings that the",
        "next layers start with (the window added in ATen's order: the same values), fused into one",
        "`torch.compile`d call per layer; the convolutions and linear layers stay the same eager calls as in",
        "the ANN. The twin passes each layer's bias in one sample's shape and its inputs unreshaped (no views:",
        "fewer guards for dynamo to check per call).",
        "",
        "References, timed once after a warm-up in the first repetition's eager process: the float64 twin",
        '(spike-exact against Brian2, eager), and the float32 twin through the T-step stepwise loop (`method="stepwise"`:',
        "the library's path before the lookup, and still its fallback). `identical`: outputs, all spike times and",
        "spike counts equal, bit for bit, on these inputs, in every process. These are single calls, so noisier",
        "than the medians above.",
        "",
        *_references(rows),
        "",
        "## Where the eager float32 twin's time goes",
        "",
        "Fractions of one `GraphModule.forward` (eager, float32), timed by wrapping the lookup (`bucketize`, gathers,",
        "spike counts) and the finiteness check; the rest is the affine ops (conv2d, linear, avg_pool2d), the bias",
        "add and Python.",
        "",
        *_breakdown(rows),
        "",
        "## Every repetition",
        "",
        "Each process's eager ANN and its twin path (medians of its rounds), the ratio, and the machine's",
        "1-minute load average when the process started and ended (its own work included).",
        "",
        *_repetitions(rows),
        "",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--repetitions", type=int, default=3,
        help="fresh processes per model and path, interleaved (median and range of the ratios reported)",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds per variant in each process (median)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument(
        "--quick", action="store_true",
        help="smoke test: 2 repetitions of 1 round, the digits CNN unless --models is given; written only with --out",
    )  # fmt: skip
    ap.add_argument("--models", nargs="*", default=None, choices=list(MODELS), help="default: all three")
    ap.add_argument(
        "--out", default=None, help="output path without suffix (default benchmarks/results/twin_vs_ann)"
    )
    ap.add_argument(
        "--report-only", action="store_true",
        help="rewrite the .md report from the .json result (same path as --out), without measuring",
    )  # fmt: skip
    args = ap.parse_args(argv)
    write = args.out is not None or not args.quick
    args.out = args.out or os.path.join(HERE, "results", "twin_vs_ann")
    if args.report_only:
        with open(args.out + ".json") as f:
            write_atomic(args.out + ".md", "\n".join(report(json.load(f))))
        return 0
    if args.quick:
        args.repeat, args.repetitions = 1, 2
        args.models = args.models or ["digits-cnn"]
    args.models = args.models or list(MODELS)
    if args.repetitions < 1 or args.repeat < 1:
        ap.error(f"--repetitions and --repeat must be at least 1 (got {args.repetitions}, {args.repeat})")
    t_start, load_start = time.perf_counter(), load_average()
    reps = {name: [] for name in args.models}
    for i in range(args.repetitions):  # interleaved: every model's processes, then again
        for name in args.models:
            part = run_repetition(name, args.batch, args.repeat, args.threads, references=i == 0)
            reps[name].append(part)
            print(
                f"repetition {i + 1}/{args.repetitions}, {name}: "
                + ", ".join(f"{g} x{part[g]['ratio'][v]:.2f}" for g, v in TIMED.items())
                + f", ANN compiled x{part['compiled']['ratio']['ann_f32_compiled']:.2f}; loads "
                + ", ".join(f"{g} {part[g]['load_avg_1min'][g][0]:.1f}" for g in GROUPS),
                flush=True,
            )
    rows = [
        merge_repetitions(name, reps[name], args.batch, args.repeat, args.threads) for name in args.models
    ]
    wall, load_end = time.perf_counter() - t_start, load_average()
    given = sys.argv[1:] if argv is None else list(argv)
    shown = [
        a for i, a in enumerate(given) if not a.startswith("--out") and (i == 0 or given[i - 1] != "--out")
    ]
    command = " ".join([".venv/bin/python benchmarks/twin_vs_ann.py", *shown])
    result = {
        "machine": machine(),
        "host": host(),
        "command": command,
        "wall_s": wall,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "target_ratio_f32": TARGET_RATIO,
        "rows": rows,
    }
    md = report(result)
    if write:
        write_atomic(args.out + ".md", "\n".join(md))
        write_json_atomic(args.out + ".json", result)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
