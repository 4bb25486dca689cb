"""Inference time of the torch twin vs the plain ANN it was converted from, on CPU.

For the digits CNN (``models.DigitsCNN``, 1x8x8), VGG16 and ResNet20 (3x32x32), with random
weights in eval mode, batch 128, ``torch.set_num_threads(2)``: the ANN in float32 (plain eager,
the baseline; and under ``torch.compile`` for reference) against the twin,
``convert(model, shape, code=SCTTFSCode(T=6, *PRESETS['cifar10']))`` run with the library's
``scttfs_brian.torch.run(graph, x, dtype=torch.float32)``: the default (``compiled="auto"``: large
layers compiled, small ones eager), ``compiled=False`` (eager) and ``compiled=True`` (target ratio
of the default <= 1.5). Each model runs in three fresh processes (``GROUPS``: eager, default,
compiled; compiled kernels slow the eager ops of their process, so eager variants never share one
with them), each timing the eager ANN too; in each the variants are warmed up once (compilation
happens there and is not timed), then called in rounds in a rotating order (so machine load hits
them alike), and the medians are reported; ratios divide by the ANN of the same process. For reference, timed once after
a warm-up: the float64 twin (the spike-exact path against Brian2) and the float32 twin through the
T-step stepwise loop (``method="stepwise"``: the library's path before the codebook lookup, still
its fallback). The
ratio is what to compare; absolute times move with the machine's load (reported).

The twin's spiking layers use the codebook lookup of ``scttfs_brian.torch.lookup``: the code's
spike times are a monotone step function of the potential, so the code's boundaries
(``coding.spike_boundaries``, derived once per code and dtype by bisection over every float, the
stepwise rule deciding) turn the T-step loop into "how many boundaries are <= v" and per-word
tables. Eager that is one ``torch.bucketize`` and gathers; ``compiled=True`` fuses the bias add,
one comparison per boundary, the gathers and the spike counts into one pass per layer
(``scttfs_brian.torch.compiled_lookup``). The time breakdown wraps the lookup's public functions
``word_lookup`` and ``all_finite`` for one call.

    .venv/bin/python benchmarks/twin_vs_ann.py [--repeat 5] [--quick] [--models vgg16 ...]

Writes benchmarks/results/twin_vs_ann.md and .json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, peak_rss_mib, run_in_fresh_process, write_atomic, write_json_atomic  # noqa: E402

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


def _median_times(variants: dict, repeat: int) -> tuple[dict[str, float], dict]:
    """One warm-up call per variant (``fn(True)``: its result is kept, e.g. with spike times
    recorded), then ``repeat`` rounds of ``fn(False)`` in a rotating order; medians (s)."""
    warm = {k: fn(True) for k, fn in variants.items()}
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(repeat):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            variants[k](False)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, warm


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


#: The processes of one model: torch.compile'd kernels run on their own OpenMP threads, which slow
#: the eager ops of the same process after them, so eager variants never share a process with
#: compiled ones. Each group times the eager ANN too: ratios divide by the ANN of their process.
GROUPS = {
    "eager": ("ann_f32", "twin_f32"),
    "default": ("ann_f32", "twin_f32_default"),
    "compiled": ("ann_f32", "ann_f32_compiled", "twin_f32_compiled"),
}


def measure(name: str, batch: int, repeat: int, threads: int, group: str, queue) -> None:
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

    def loop(dtype):  # the T-step loop instead of the codebook lookup
        def fn(record):
            return engine.run(graph, x, record=record, dtype=dtype, method="stepwise")

        return fn

    all_variants = {
        "ann_f32": ann,
        "twin_f32": twin(compiled=False),
        "twin_f32_default": twin(),
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
    out = dict(first_call_s=first, median_s=med, ratio={k: v / med["ann_f32"] for k, v in med.items()})
    out["identical"] = {
        f"{k.rsplit('_', 1)[1]} vs eager": _same(warm[k], eager_out)
        for k in ("twin_f32_default", "twin_f32_compiled")
        if k in warm
    }
    if group == "eager":
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
        rounds_s={group: rounds_s},
        peak_rss_mib={group: peak_rss_mib()},
        load_avg_1min={group: [load_start, _load()]},
    )
    queue.put(out)


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


def run_config(name: str, batch: int, repeat: int, threads: int) -> dict:
    """One model: each group of :data:`GROUPS` in a fresh process, merged into one row (the
    ``ann_f32`` shown is the eager group's; each ratio is against its own process's ANN)."""
    row = dict(model=name, batch=batch, threads=threads, T=T, repeat=repeat)
    for group in GROUPS:
        part = run_in_fresh_process(measure, name, batch, repeat, threads, group)
        for k, v in part.items():
            if isinstance(v, dict) and isinstance(row.get(k), dict):
                row[k].update({kk: vv for kk, vv in v.items() if not (kk == "ann_f32" and kk in row[k])})
            else:
                row[k] = v
    row["speedup_vs_loop"] = {
        k: row["reference_s"]["loop_f32"] / row["median_s"][k]
        for k in ("twin_f32", "twin_f32_default", "twin_f32_compiled")
    }
    return row


def _table(rows: list[dict]) -> list[str]:
    md = [
        "| model | input | spiking layers | ANN f32 (ms) | ANN compiled (ms) | twin f32 default (ms) "
        "| twin f32 eager (ms) | twin f32 compiled (ms) | ratio default | ratio eager | ratio compiled "
        "| ratio compiled vs compiled ANN | target (<= x1.5) | load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        m, q = r["median_s"], r["ratio"]
        ok = (
            "met by the default"
            if q["twin_f32_default"] <= TARGET_RATIO
            else "met with compiled=True"
            if q["twin_f32_compiled"] <= TARGET_RATIO
            else "**not met**"
        )
        md.append(
            f"| {r['model']} | {'x'.join(map(str, r['input_shape']))} | {r['spiking_layers']} | "
            f"{1e3 * m['ann_f32']:.1f} | {1e3 * m['ann_f32_compiled']:.1f} | {1e3 * m['twin_f32_default']:.1f} | "
            f"{1e3 * m['twin_f32']:.1f} | {1e3 * m['twin_f32_compiled']:.1f} | x{q['twin_f32_default']:.2f} | "
            f"x{q['twin_f32']:.2f} | x{q['twin_f32_compiled']:.2f} | "
            f"x{m['twin_f32_compiled'] / m['ann_f32_compiled']:.2f} | {ok} | "
            f"{' / '.join(f'{a:.1f} -> {b:.1f}' for a, b in r['load_avg_1min'].values())} |"
        )
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--repeat", type=int, default=5, help="timed rounds per float32 variant (median reported)"
    )
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--quick", action="store_true", help="1 round, for a smoke test")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "twin_vs_ann"))
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat = 1
    t_start = time.perf_counter()
    rows = []
    for name in args.models:
        r = run_config(name, args.batch, args.repeat, args.threads)
        rows.append(r)
        q = r["ratio"]
        print(
            f"{name}: ANN {1e3 * r['median_s']['ann_f32']:.1f} ms; twin default x{q['twin_f32_default']:.2f}, "
            f"eager x{q['twin_f32']:.2f}, "
            f"compiled x{q['twin_f32_compiled']:.2f}, ANN compiled x{q['ann_f32_compiled']:.2f}, "
            f"loop x{q['loop_f32']:.2f}, f64 x{q['twin_f64']:.2f}; identical {r['identical']}; "
            f"load {r['load_avg_1min']}",
            flush=True,
        )
    wall = time.perf_counter() - t_start
    given = sys.argv[1:] if argv is None else list(argv)
    shown = [
        a for i, a in enumerate(given) if not a.startswith("--out") and (i == 0 or given[i - 1] != "--out")
    ]
    command = " ".join([".venv/bin/python benchmarks/twin_vs_ann.py", *shown])
    met = [r["model"] for r in rows if r["ratio"]["twin_f32_default"] <= TARGET_RATIO]
    md = [
        "# Torch twin vs plain ANN: inference time on CPU",
        "",
        f"Machine: {machine()}, shared with other jobs: the 1-minute load average at the start and end of each",
        f"process (eager / default / compiled) is in the table (2 cores). torch.set_num_threads({args.threads}), batch {args.batch}, random",
        f"weights, eval mode. Command: `{command}` ({wall:.0f} s).",
        "",
        f"The twin is `convert(model, shape, code=SCTTFSCode(T={T}, *PRESETS['cifar10']))` run with the library's",
        '`scttfs_brian.torch.run(graph, x, dtype=torch.float32)`: the default (`compiled="auto"`: layers of at least',
        "`AUTO_COMPILE_MIN` potentials per call compiled, smaller ones eager), `compiled=False` (eager) and",
        "`compiled=True`; the baseline is the ANN in plain eager float32 under `torch.no_grad()`; the ANN under",
        "`torch.compile` is shown for reference. Each model runs in three fresh processes (eager, default, compiled:",
        "compiled kernels slow the eager ops of their process), each timing the eager ANN too; in each the variants",
        f"are called once (compilation, not timed), once more to warm up, then in {args.repeat} rounds in a rotating",
        "order, and the medians are shown. Ratios divide by the eager float32 ANN of the same process and are what",
        "to compare; the ANN times shown are the eager process's.",
        "",
        f"Target (twin / plain ANN <= x{TARGET_RATIO}): "
        + (
            f"met for {', '.join(met)}"
            + (
                f"; **not met** for {', '.join(sorted(set(MODELS) & set(args.models) - set(met)))}"
                if len(met) < len(rows)
                else ""
            )
            if met
            else "**not met**"
        )
        + " (the default).",
        "",
        *_table(rows),
        "",
        "## How the twin gets there",
        "",
        "Each spiking layer maps its potentials to codewords with the code's boundaries",
        "(`coding.spike_boundaries`, derived once per code and dtype by bisection over every float of the dtype,",
        "the stepwise rule itself deciding, then checked at every boundary and its float neighbours, +-0, +-max,",
        "+-inf and NaN). Eager: one `torch.bucketize` over the boundaries, gathers of the decoded value (and spike",
        "times when recorded), the spike counts from one `bincount` of (sample, word), and one `aminmax` pass",
        "(non-finite potentials go through the stepwise loop). `compiled=True`: the bias add, one comparison",
        "per boundary, the gathers and the counts fused into one `torch.compile`d pass per layer; the",
        "convolutions stay the same eager calls as in the ANN. The default compiles the layers of at least",
        "`scttfs_brian.torch.lookup.AUTO_COMPILE_MIN` potentials per call and runs the others eagerly; where",
        "`torch.compile` fails (no C++ compiler on CPU, no triton on GPU) it warns once and runs them all eagerly.",
        "",
        "References, timed once after a warm-up: the float64 twin (spike-exact against Brian2, eager), and the",
        'float32 twin through the T-step stepwise loop (`method="stepwise"`: the library\'s path before the lookup,',
        "and still its fallback). `identical`: outputs, all spike times and spike counts equal, bit for bit, on these inputs.",
        "These are single calls, so noisier than the medians above.",
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
    ]
    write_atomic(args.out + ".md", "\n".join(md))
    write_json_atomic(
        args.out + ".json",
        {
            "machine": machine(),
            "command": command,
            "wall_s": wall,
            "target_ratio_f32": TARGET_RATIO,
            "rows": rows,
        },
    )
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
