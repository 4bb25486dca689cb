"""Inference time of the torch twin vs the plain ANN it was converted from, on CPU.

For the digits CNN (``models.DigitsCNN``, 1x8x8), VGG16 and ResNet20 (3x32x32), with random
weights in eval mode, batch 128, ``torch.set_num_threads(2)``: the ANN in float32 against the
twin, ``convert(model, shape, code=SCTTFSCode(T=6, *PRESETS['cifar10']))`` run with
``functional.run(graph, x, dtype=...)`` in float32 (the fast path; target ratio <= 1.5) and
float64 (the spike-exact path, for reference). Each model runs in a fresh process; in it the
float32 variants are warmed up once, then called in rounds in a rotating order (so machine load
hits them alike), and the medians are reported; the float64 twin is timed once after its
warm-up. The ratio is what to compare; absolute times move with the machine's load.

Where the twin's float32 time goes is measured in the same process by wrapping the pieces of
``GraphModule.forward`` (potential validation, the T-step loop of ``stepwise_spike_times``,
``decode``, the spike counts; the rest is the affine ops), and drop-in alternatives, prototyped
here and checked to give identical outputs, spike times and counts, are timed in the same rounds:

* ``searchsorted``: spike times without the T-step loop. The thresholds decrease with ``t``
  (``k > 0``, and rounding to float32 keeps them non-increasing), so the first step with
  ``v >= theta_e(t)`` is ``T - searchsorted(flip(theta_e), v, right=True)``, the same comparison
  in the same dtype; the calibration step is ``max(t_enc, T - searchsorted(flip(theta_c), r,
  right=True))`` with the residual ``r = v - theta_e(t_enc)`` computed as the loop computes it.
* ``lut``: decode as one ``torch.take`` from a ``(T+1) x (T+1)`` table of ``theta_e(i) +
  theta_c(j)`` built in float64, instead of building float64 tables, two ``where`` and a cast
  on every call; bit-equal to the current float64-then-cast result.
* ``codebook``: ``(t_enc, t_cal)`` is a monotone step function of ``v``, so with the smallest
  potential of each codeword (bisection over every float of the dtype, the stepwise rule itself
  deciding) the spike times are one ``searchsorted`` over at most ``T (T+1) + 1`` boundaries
  and two ``torch.take``; finiteness is checked with one ``aminmax`` pass.

    .venv/bin/python benchmarks/twin_vs_ann.py [--repeat 3] [--quick] [--models vgg16 ...]

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


# --- the two alternatives, prototyped here (the library is not changed by this benchmark) ------
def searchsorted_spike_times(code, v, check=True):
    """``stepwise_spike_times(v, code.table_e, code.table_c)`` without the loop over steps."""
    import torch

    from scttfs_brian.coding import _as_potentials, torch_table

    if check:
        v = _as_potentials(v)
    n = code.T
    tab_e = torch_table(code.table_e, v.dtype, v.device)
    t_enc = n - torch.searchsorted(tab_e.flip(0).contiguous(), v.contiguous(), right=True)
    fired = t_enc < n
    t_enc = torch.where(fired, t_enc, -1)
    if code.table_c is None:
        return t_enc, torch.full_like(t_enc, -1)
    tab_c = torch_table(code.table_c, v.dtype, v.device)
    r = v - tab_e[t_enc.clamp(min=0)]
    t_c = torch.maximum(n - torch.searchsorted(tab_c.flip(0).contiguous(), r, right=True), t_enc)
    return t_enc, torch.where(fired & (t_c < n), t_c, -1)


_LUT: dict = {}


def lut_decode(code, t_enc, t_cal=None):
    """``code.decode(t_enc, t_cal)`` in float64 cast to the twin's dtype, as one gather."""
    import numpy as np
    import torch

    n = code.T
    key = (id(code), t_enc.device)
    lut = _LUT.get(key)
    if lut is None:
        e = np.concatenate([[0.0], code.table_e])
        c = np.concatenate([[0.0], code.table_c]) if code.table_c is not None else np.zeros(n + 1)
        lut = _LUT[key] = torch.from_numpy((e[:, None] + c[None, :]).ravel()).to(t_enc.device)
    if t_cal is None or code.table_c is None:
        t_cal = torch.full_like(t_enc, -1)
    return torch.take(lut, (t_enc + 1) * (n + 1) + (t_cal + 1))  # take: faster than lut[...] on CPU


def _rank(t_enc, t_cal, n: int):
    """Order of the codewords along the potential axis: silent first, then t_enc from T-1 down
    to 0, within each no calibration first, then t_cal from T-1 down to t_enc."""
    import numpy as np

    base = np.where(t_enc >= 0, (n - 1 - t_enc) * (n + 1) + 1, 0)
    return base + np.where((t_enc >= 0) & (t_cal >= 0), n - t_cal, 0)


def _ordered(x):
    """Floats to int64 in the same order (for bisection over every float of the dtype)."""
    import numpy as np

    bits = np.int32 if x.dtype == np.float32 else np.int64
    i = x.view(bits).astype(np.int64)
    return np.where(i < 0, -(i & np.iinfo(bits).max), i)


def _from_ordered(i, dtype):
    import numpy as np

    bits = np.int32 if np.dtype(dtype) == np.float32 else np.int64
    return np.where(i < 0, (-i) | np.iinfo(bits).min, i).astype(bits).view(dtype)


def codebook_bounds(code, dtype):
    """``(bounds, t_enc, t_cal)`` with ``bounds[r-1]`` the smallest ``dtype`` potential whose
    codeword has rank >= r under the stepwise rule itself (bisection over all floats), so that
    ``k = searchsorted(bounds, v, right=True)`` gives ``(t_enc[k], t_cal[k])`` exactly: the rule
    is monotone in ``v`` (non-increasing tables; ``v - theta_e`` rounds monotonically)."""
    import numpy as np

    from scttfs_brian.coding import stepwise_spike_times

    n = code.T
    n_ranks = (n - 1) * (n + 1) + 1 + n
    r = np.arange(1, n_ranks + 1)

    def rank(v):
        return _rank(*stepwise_spike_times(v, code.table_e, code.table_c), n)

    fmax = np.finfo(dtype).max
    lo = np.full(n_ranks, _ordered(np.array([-fmax], dtype))[0])
    hi = np.full(n_ranks, _ordered(np.array([fmax], dtype))[0])
    for _ in range(80):  # rank(lo) < r <= rank(hi) where reachable
        mid = lo // 2 + hi // 2 + (lo % 2 + hi % 2) // 2  # no int64 overflow
        ok = rank(_from_ordered(mid, dtype)) >= r
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
        if np.all(hi // 2 - lo // 2 <= 1) and np.all(hi - lo <= 1):
            break
    bounds = _from_ordered(hi, dtype).copy()
    bounds[r > rank(np.array([fmax], dtype))[0]] = np.inf
    t_enc, t_cal = np.full(n_ranks + 1, -1), np.full(n_ranks + 1, -1)
    for t in range(n):
        for c in [-1] + (list(range(t, n)) if code.table_c is not None else []):
            k = _rank(np.array(t), np.array(c), n)
            t_enc[k], t_cal[k] = t, c
    return bounds, t_enc, t_cal


_CODEBOOK: dict = {}


def _codebook(code, v):
    """Cached per code, dtype and device: boundaries, spike times per rank (int64 and ``v``'s
    dtype) and the decoded value per rank (float64 sum, cast to ``v``'s dtype)."""
    import numpy as np
    import torch

    key = (id(code), v.dtype, v.device)
    if key not in _CODEBOOK:
        bounds, t_enc, t_cal = codebook_bounds(code, torch.empty((), dtype=v.dtype).numpy().dtype)
        e = np.where(t_enc >= 0, np.asarray(code.table_e)[np.clip(t_enc, 0, None)], 0.0)
        c = np.zeros_like(e) if code.table_c is None else np.asarray(code.table_c)[np.clip(t_cal, 0, None)]
        z = e + np.where(t_cal >= 0, c, 0.0)
        as_t = lambda a, dt=None: torch.from_numpy(a).to(device=v.device, dtype=dt)  # noqa: E731
        _CODEBOOK[key] = dict(
            bounds=as_t(bounds), t_enc=as_t(t_enc), t_cal=as_t(t_cal),
            t_enc_v=as_t(t_enc, v.dtype), t_cal_v=as_t(t_cal, v.dtype), z=as_t(z, v.dtype),
        )  # fmt: skip
    return _CODEBOOK[key]


def _rank_of(code, v, check=True):
    """Finiteness by one ``aminmax`` pass (NaN propagates; the full check only on failure),
    then the codeword rank of every potential: one ``searchsorted``."""
    import torch

    from scttfs_brian.coding import _as_potentials

    if check and v.numel():
        lo, hi = torch.aminmax(v)
        if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
            _as_potentials(v)  # raises with the offending value and index
    book = _codebook(code, v)
    return book, torch.searchsorted(book["bounds"], v.contiguous(), right=True)


def codebook_spike_times(code, v):
    """``stepwise_spike_times`` as one ``searchsorted`` over the codeword boundaries + 2 gathers."""
    import torch

    book, k = _rank_of(code, v)
    return torch.take(book["t_enc"], k), torch.take(book["t_cal"], k)


def codebook_encode_torch(code, v, *, compiled=False, check=True):
    """``encode_torch`` (spike times in ``v``'s dtype and the decoded value) as one
    ``searchsorted`` and 3 gathers."""
    import torch

    book, k = _rank_of(code, v, check)
    return torch.take(book["t_enc_v"], k), torch.take(book["t_cal_v"], k), torch.take(book["z"], k)


def searchsorted_encode_torch(code, v, *, compiled=False, check=True):
    """``encode_torch`` with :func:`searchsorted_spike_times` and :func:`lut_decode`."""
    t_enc, t_cal = searchsorted_spike_times(code, v, check)
    return t_enc.to(v.dtype), t_cal.to(v.dtype), lut_decode(code, t_enc, t_cal).to(v.dtype)


def alternatives(fused_api: bool) -> dict[str, dict]:
    """The prototypes as patches of ``_CodeBase``: the twin's forward calls ``encode_torch``
    (spike times and decoded value in one call) when the library has it, else ``spike_times``
    then ``decode``."""
    if fused_api:
        return {
            "searchsorted + lut": {"encode_torch": searchsorted_encode_torch},
            "codebook": {"encode_torch": codebook_encode_torch},
        }
    return {
        "searchsorted + lut": {"spike_times": searchsorted_spike_times, "decode": lut_decode},
        "codebook": {"spike_times": codebook_spike_times, "decode": lut_decode},
    }


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


def measure(name: str, batch: int, repeat: int, threads: int, try_compiled: bool, queue) -> None:
    import inspect

    import torch

    from scttfs_brian import PRESETS, SCTTFSCode, coding, convert, functional
    from scttfs_brian.coding import _CodeBase

    torch.set_num_threads(threads)
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
    fused_api = hasattr(_CodeBase, "encode_torch")
    has_compiled = "compiled" in inspect.signature(functional.run).parameters

    def ann(record):
        with torch.no_grad():
            return model(x)

    def twin(patch=None, **run_kwargs):
        patch = patch or {}
        saved = {k: getattr(_CodeBase, k) for k in patch}

        def fn(record):
            for k, f in patch.items():
                setattr(_CodeBase, k, f)
            try:
                return functional.run(graph, x, record=record, **{"dtype": torch.float32, **run_kwargs})
            finally:
                for k, f in saved.items():
                    setattr(_CodeBase, k, f)

        return fn

    alts = alternatives(fused_api)
    variants = {"ann_f32": ann, "twin_f32": twin()}
    variants.update({f"twin_f32 {k}": twin(p) for k, p in alts.items()})
    if has_compiled and try_compiled:
        variants["twin_f32 compiled"] = twin(compiled=True)
    t0 = time.perf_counter()
    med, warm = _median_times(variants, repeat)
    warm_s = time.perf_counter() - t0
    # float64, the spike-exact reference: once after a warm-up (the slowest, only for scale)
    med64, _ = _median_times({"twin_f64": twin(dtype=torch.float64)}, 1)
    # functional.run caches one module: a dtype switch rebuilds it; what that costs
    t0 = time.perf_counter()
    module = functional.GraphModule(graph, torch.float32)
    module_build_s = time.perf_counter() - t0

    reference = warm["twin_f32"]
    identical = {
        k: bool(
            torch.equal(out.output, reference.output)
            and all(
                torch.equal(out.spike_times[p][j], reference.spike_times[p][j])
                for p in reference.spike_times
                for j in range(2)
            )
            and all(
                torch.equal(out.spike_counts[p], reference.spike_counts[p]) for p in reference.spike_counts
            )
        )
        for k, out in warm.items()
        if k.startswith("twin_f32 ")
    }

    # where the float32 twin's time goes: wrap what GraphModule.forward calls (one call)
    timer = _Timer()
    wrap = {"_as_potentials": "validate potentials", "torch_table": "threshold tables"}
    if fused_api:
        wrap["_stepwise_torch"] = "stepwise loop (with decode)"
    else:
        wrap["stepwise_spike_times"] = "stepwise loop"
    originals = {k: getattr(coding, k) for k in wrap}
    for k, label in wrap.items():
        setattr(coding, k, timer.wrap(label, originals[k]))
    if not fused_api:
        decode = _CodeBase.decode
        _CodeBase.decode = timer.wrap("decode", decode)
    t0 = time.perf_counter()
    with torch.no_grad():
        module(x)
    wrapped_total = time.perf_counter() - t0
    for k, f in originals.items():
        setattr(coding, k, f)
    if not fused_api:
        _CodeBase.decode = decode
    if not fused_api:  # stepwise_spike_times builds its tables inside the loop's share
        timer.total["stepwise loop"] = timer.total.get("stepwise loop", 0.0) - timer.total.get(
            "threshold tables", 0.0
        )
    breakdown = {k: v / wrapped_total for k, v in timer.total.items()}
    t0 = time.perf_counter()
    for t_enc, t_cal in reference.spike_times.values():  # what forward does for the counts
        torch.stack([(t_enc >= 0).flatten(1).sum(1), (t_cal >= 0).flatten(1).sum(1)], dim=1)
    breakdown["spike counts"] = (time.perf_counter() - t0) / wrapped_total
    breakdown["affine ops and the rest"] = max(0.0, 1.0 - sum(breakdown.values()))

    counts = reference.spike_counts
    neurons = sum(int(torch.tensor(graph.shape_of(k)).prod()) for k in counts)
    queue.put(
        dict(
            model=name,
            input_shape=list(shape),
            batch=batch,
            threads=threads,
            T=T,
            repeat=repeat,
            twin_api="encode_torch" if fused_api else "spike_times + decode",
            spiking_layers=len(graph.spiking_layers),
            spiking_neurons=neurons,
            convert_s=convert_s,
            warmup_and_rounds_s=warm_s,
            ann_f32_s=med["ann_f32"],
            twin_f32_s=med["twin_f32"],
            twin_f64_s=med64["twin_f64"],
            ratio_f32=med["twin_f32"] / med["ann_f32"],
            ratio_f64=med64["twin_f64"] / med["ann_f32"],
            breakdown_f32=breakdown,
            module_build_s=module_build_s,
            variants={
                k[len("twin_f32 ") :]: dict(
                    seconds=v, ratio=v / med["ann_f32"], speedup=med["twin_f32"] / v, identical=identical[k]
                )
                for k, v in med.items()
                if k.startswith("twin_f32 ")
            },
            spikes_per_neuron=float(sum(c.sum() for c in counts.values()) / (batch * neurons)),
            peak_rss_mib=peak_rss_mib(),
        )
    )


def run_config(*args) -> dict:
    return run_in_fresh_process(measure, *args)


def _table(rows: list[dict]) -> list[str]:
    md = [
        "| model | input | spiking layers | ANN f32 (ms) | twin f32 (ms) | twin f64 (ms) | ratio f32 | ratio f64 | target f32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ok = "met" if r["ratio_f32"] <= TARGET_RATIO else "**not met**"
        md.append(
            f"| {r['model']} | {'x'.join(map(str, r['input_shape']))} | {r['spiking_layers']} | "
            f"{1e3 * r['ann_f32_s']:.1f} | {1e3 * r['twin_f32_s']:.1f} | {1e3 * r['twin_f64_s']:.1f} | "
            f"x{r['ratio_f32']:.2f} | x{r['ratio_f64']:.2f} | {ok} (<= x{TARGET_RATIO}) |"
        )
    return md


def _breakdown(rows: list[dict]) -> list[str]:
    keys = ["affine ops and the rest"] + sorted(
        {k for r in rows for k in r["breakdown_f32"]} - {"affine ops and the rest"}
    )
    md = ["| model | twin API | " + " | ".join(keys) + " |", "|---|---|" + "---:|" * len(keys)]
    for r in rows:
        cells = " | ".join(
            f"{100 * r['breakdown_f32'][k]:.0f}%" if k in r["breakdown_f32"] else "-" for k in keys
        )
        md.append(f"| {r['model']} | {r['twin_api']} | {cells} |")
    return md


def _alternatives(rows: list[dict]) -> list[str]:
    names = list(dict.fromkeys(k for r in rows for k in r["variants"]))
    md = [
        "| model | twin f32 now (ms) | "
        + " | ".join(f"{n} (ms, ratio, speed-up)" for n in names)
        + " | identical |",
        "|---|---:|" + "---:|" * len(names) + "---|",
    ]
    for r in rows:
        cells = []
        for n in names:
            v = r["variants"].get(n)
            cells.append(
                "-" if v is None else f"{1e3 * v['seconds']:.1f}, x{v['ratio']:.2f}, x{v['speedup']:.1f}"
            )
        same = all(v["identical"] for v in r["variants"].values())
        md.append(
            f"| {r['model']} | {1e3 * r['twin_f32_s']:.1f} (x{r['ratio_f32']:.2f}) | "
            + " | ".join(cells)
            + f" | {'yes' if same else '**no**'} |"
        )
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed rounds per float32 variant (median reported)"
    )
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--quick", action="store_true", help="1 round, for a smoke test")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--no-compiled", action="store_true", help="skip functional.run(..., compiled=True)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "twin_vs_ann"))
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat = 1
    t_start = time.perf_counter()
    rows = []
    for name in args.models:
        r = run_config(name, args.batch, args.repeat, args.threads, not args.no_compiled)
        rows.append(r)
        print(
            f"{name}: ANN {1e3 * r['ann_f32_s']:.1f} ms, twin f32 {1e3 * r['twin_f32_s']:.1f} ms "
            f"(x{r['ratio_f32']:.2f}), twin f64 {1e3 * r['twin_f64_s']:.1f} ms (x{r['ratio_f64']:.2f}); "
            + "; ".join(f"{k} x{v['ratio']:.2f}" for k, v in r["variants"].items()),
            flush=True,
        )
    wall = time.perf_counter() - t_start
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(
        [".venv/bin/python benchmarks/twin_vs_ann.py", *(a for a in given if not a.startswith("--out"))]
    )
    md = [
        "# Torch twin vs plain ANN: inference time on CPU",
        "",
        f"Machine: {machine()} (shared with other jobs). torch.set_num_threads({args.threads}), batch {args.batch},",
        f"random weights, eval mode. Command: `{command}` ({wall:.0f} s).",
        "",
        f"The twin is `convert(model, shape, code=SCTTFSCode(T={T}, *PRESETS['cifar10']))` run with",
        "`functional.run(graph, x, dtype=...)`; the ANN runs in float32 under `torch.no_grad()`. Each model runs in a",
        "fresh process; in it the float32 variants (ANN, twin, and the alternatives below) are called once to warm up,",
        f"then in {args.repeat} rounds in a rotating order, and the medians are shown; the float64 twin (the spike-exact",
        "reference) is timed once after its warm-up. Ratios divide by the float32 ANN of the same process and are what",
        "to compare: the twin's extra work is elementwise and memory-bound, so it suffers more than the ANN's",
        "convolutions when other jobs share the machine (single calls of the same twin varied up to 6x here).",
        "",
        *_table(rows),
        "",
        "## Where the float32 twin's time goes",
        "",
        "Fractions of one `GraphModule.forward` (float32), timed by wrapping what it calls: the T-step loop of the",
        "stepwise rule (per step about 10-14 full-tensor passes: compares, `&`, `torch.where`, a subtraction),",
        "`decode` where it is separate, the threshold tables built per call (`torch_table`), the potentials'",
        "validation (`_as_potentials`: `isfinite` + `any`) and the spike counts (`t >= 0` and a sum per population,",
        "timed on the recorded spike times); the rest is the affine ops (conv2d, linear, avg_pool2d, bias add).",
        "",
        *_breakdown(rows),
        "",
        "(`twin API`: `encode_torch` where the library's twin computes spike times and the decoded value in one",
        "call, `_stepwise_torch`; `spike_times + decode` where it calls them one after the other.)",
        "",
        "## Faster variants, timed in the same rounds",
        "",
        "Prototyped in this benchmark (the library is not changed by it), patched into `_CodeBase` for their calls:",
        "",
        "* `searchsorted + lut`: the thresholds do not increase with t (k > 0; rounding keeps them non-increasing),",
        "  so the first step with `v >= theta_e(t)` is `T - searchsorted(flip(theta_e), v, right=True)`, the same",
        "  comparison in the same dtype; the calibration step is `max(t_enc, T - searchsorted(flip(theta_c), r,",
        "  right=True))` with `r = v - theta_e(t_enc)` computed as the loop computes it; decoding is one `torch.take`",
        "  from a (T+1)x(T+1) table of `theta_e(i) + theta_c(j)` built in float64.",
        "* `codebook`: `(t_enc, t_cal)` is a monotone step function of v, so the smallest potential of each",
        "  codeword (found once per code and dtype by bisection over every float, the stepwise rule itself deciding)",
        "  turns spike times and decoded value into one `searchsorted` over at most T(T+1)+1 boundaries and",
        "  `torch.take` from per-codeword tables; finiteness is checked with one `aminmax` pass (NaN propagates)",
        "  instead of `isfinite` + `any`.",
        "* `compiled` (when the library's `functional.run` has `compiled=`): the library's own `torch.compile` path;",
        "  its compilation happens in the warm-up call and is not in the timings.",
        "",
        "`identical`: outputs, spike times and spike counts equal to the current float32 twin's on these inputs.",
        "",
        *_alternatives(rows),
        "",
        "## Switching dtypes through `functional.run`",
        "",
        "`functional.run` caches one `GraphModule` (one dtype) at a time, so alternating float32 and float64",
        "calls rebuilds the weights on every switch; building the float32 module takes "
        + ", ".join(f"{1e3 * r['module_build_s']:.1f} ms ({r['model']})" for r in rows)
        + ".",
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
