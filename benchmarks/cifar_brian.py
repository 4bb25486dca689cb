"""CIFAR-sized networks (ResNet20, VGG16 with average pooling) simulated in Brian2.

For each network (random weights, randomized BatchNorm statistics, kernels fitted to the
activations of random CIFAR-shaped inputs, T = 6): synapse count, bytes per synapse (resident
memory added by the build, divided by the synapses), build time, peak resident memory,
seconds per image, and spike-exact agreement with the torch twin on a few images.

Each configuration runs in a fresh process; finished configurations are kept in the results
JSON and skipped on the next invocation (``--fresh`` reruns them), so an interrupted run
resumes where it stopped.

    .venv/bin/python benchmarks/cifar_brian.py [--models resnet20 vgg16] [--images 2]

Writes benchmarks/results/cifar_brian.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, peak_rss_mib, run_in_fresh_process, write_atomic, write_json_atomic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(model_name: str, images: int, copies: int, shared: bool, T: int, target: str, queue) -> None:
    import torch

    from scttfs_brian import convert
    from scttfs_brian.brian import BuildTooLarge, simulate, synapses_per_copy
    from scttfs_brian.models import build_model, randomize_batchnorm

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = randomize_batchnorm(build_model(model_name, 10), generator=g)
    calib = torch.rand(32, 3, 32, 32, generator=g)
    t0 = time.perf_counter()
    snn = convert(model, (3, 32, 32), code="auto", calibration_data=calib, T=T)
    convert_s = time.perf_counter() - t0
    n_syn = synapses_per_copy(snn.graph) * copies
    x = torch.rand(images, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rss0 = _rss_mib()
    try:
        res = simulate(snn.graph, x, copies=copies, shared_weights=shared, target=target, record=True, progress=False)
    except BuildTooLarge as err:  # refused up front by the memory estimate: recorded, not attempted
        queue.put(dict(model=model_name, T=T, images=images, copies=copies, shared_weights=shared,
                       target=target, synapses=n_syn, refused=str(err)))
        return
    peak = peak_rss_mib()
    program = res.memory.get("program_peak_rss_bytes")
    twin = snn.simulate(x, backend="torch", record=True)
    agreement = res.compare(twin)
    queue.put(
        dict(
            model=model_name, T=T, images=images, copies=copies, shared_weights=shared, target=target,
            synapses=n_syn, neurons_per_copy=sum(l.size for l in snn.graph.layers),
            convert_s=convert_s, build_s=res.timings["build"], run_s=res.timings["run"],
            codegen_s=res.timings.get("codegen"), compile_s=res.timings.get("compile"),
            setup_s=res.timings.get("setup"),
            s_per_image=res.timings["run"] / images, peak_rss_mib=peak, rss_before_build_mib=rss0,
            program_peak_rss_mib=None if program is None else program / 2**20,
            bytes_per_synapse=(program if program is not None else (peak - rss0) * 2**20) / n_syn,
            spike_exact=agreement.spikes_exact,
            max_output_diff=agreement.max_output_difference,
            predictions_equal=agreement.predictions_exact,
            spikes_per_image=float(res.spikes_per_input.mean()), latency_steps=res.latency_steps,
        )
    )


def run_config(*args) -> dict:
    try:
        return run_in_fresh_process(measure, *args)
    except RuntimeError as err:  # e.g. killed for memory: recorded, the other configurations go on
        return {"error": str(err)}


PLAN = [  # (model, shared weights, target): runtime numpy per synapse / shared, cpp_standalone generated
    ("resnet20", False, "numpy"),
    ("resnet20", True, "numpy"),
    ("resnet20", False, "cpp_standalone"),
    ("resnet20", True, "cpp_standalone"),
    ("vgg16", False, "numpy"),
    ("vgg16", True, "cpp_standalone"),
]


def _key(name: str, shared: bool, target: str, images: int, T: int) -> str:
    key = f"{name}-{'shared' if shared else 'per-synapse'}-{images}-T{T}"
    return key if target == "numpy" else f"{key}-{target}"


def _fmt(v, f="{:.1f}"):
    return "" if v is None else f.format(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet20", "vgg16"])
    ap.add_argument("--images", type=int, default=2, help="images per runtime (numpy) configuration")
    ap.add_argument("--standalone-images", type=int, default=4, help="images per cpp_standalone configuration")
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--fresh", action="store_true", help="rerun configurations already measured")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "cifar_brian"))
    args = ap.parse_args(argv)
    done = {}
    if os.path.exists(args.out + ".json") and not args.fresh:
        with open(args.out + ".json") as f:
            done = {r["key"]: r for r in json.load(f)["rows"] if "error" not in r}  # failures are retried
    rows = []
    for name, shared, target in PLAN:
        images = args.images if target == "numpy" else args.standalone_images
        key = _key(name, shared, target, images, args.T)
        if name not in args.models:  # not measured now: keep an earlier measurement in the results
            if key in done:
                rows.append(done[key])
            continue
        if key in done:
            rows.append(done[key])
            print(f"{key}: done before, skipped", flush=True)
            continue
        r = run_config(name, images, 1, shared, args.T, target)
        r["key"] = key
        r.setdefault("machine", machine())
        rows.append(r)
        print(key, r, flush=True)
        write_json_atomic(args.out + ".json", {"machine": machine(), "rows": rows})
    # again at the end: rows kept from earlier runs after the last measured one are in it too
    write_json_atomic(args.out + ".json", {"machine": machine(), "rows": rows})
    md = [
        "# CIFAR-sized networks in Brian2",
        "",
        f"Machine: {machine()}. One network copy, dt = 1 ms, random weights, randomized BatchNorm",
        "statistics, kernels fitted by `code_from_activations` on 32 random inputs, T = 6.",
        "Command: `.venv/bin/python benchmarks/cifar_brian.py` (resumable: finished rows are kept in the",
        "JSON file and skipped; `--fresh` reruns them). `spike-exact` compares every neuron's (t_enc, t_cal)",
        "with the torch twin (float64) on every simulated image.",
        "",
        "* **runtime (numpy)**: synapses connected from index arrays; `shared` stores each projection's",
        "  distinct weights once and indexes them (linked variable). Bytes per synapse = resident memory",
        "  added between the start of the build and the end of the run, divided by the synapses (an upper",
        "  bound: it includes neurons, monitors and the run's temporaries). A row `simulate` refuses up",
        "  front (`BuildTooLarge`, from the memory estimate `brian.estimate_memory`) shows its message.",
        "* **cpp_standalone (generated)**: `simulate(..., target='cpp_standalone')`, whose default",
        "  `connectivity='generated'` connects every convolution (pooling folded in) and dense",
        "  projection by Brian2's generated code (`connect(j='... for k in range(...) if ...')`) and sets",
        "  each synapse's kernel index by an expression of `i` and `j`, so no index array exists in Python",
        "  or in the program. Bytes per synapse = the compiled program's peak resident memory (measured by",
        "  `scttfs_brian.brian.usage`, the run command) divided by the synapses: everything the program holds",
        "  (synapse arrays, spike queues of both pathways, neurons, monitors) is counted. `setup` is the",
        "  program's time before its simulation loop (creating the synapses); `s / image` is the loop only.",
        "  The `index arrays` row is the same program with `shared_weights=False` (one float64 weight per",
        "  synapse, connectivity from index arrays written by Python, `connectivity='arrays'`).",
        "",
        "| model | backend | weights | synapses | build + codegen (s) | compile (s) | setup (s) | s / image | peak RSS Python (MiB) | peak RSS program (MiB) | bytes / synapse | spike-exact | max output diff | spikes / image | latency (steps) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['key']} | | | | | | | | | | | failed: {r['error']} | | | |")
            continue
        backend = (
            "runtime (numpy)" if r.get("target", "numpy") == "numpy"
            else f"{r['target']} ({'generated' if r['shared_weights'] else 'index arrays'})"
        )
        weights = "shared (linked index)" if r["shared_weights"] else "per synapse"
        if "refused" in r:
            md.append(f"| {r['model']} | {backend} | {weights} | {r['synapses']:,} | refused: {r['refused']} | | | | | | | | | | |")
            continue
        build = r["build_s"] + (r.get("codegen_s") or 0.0)
        md.append(
            f"| {r['model']} | {backend} | {weights} | {r['synapses']:,} | {build:.1f} | {_fmt(r.get('compile_s'))} | "
            f"{_fmt(r.get('setup_s'))} | {r['s_per_image']:.2f} | {r['peak_rss_mib']:.0f} | "
            f"{_fmt(r.get('program_peak_rss_mib'), '{:.0f}')} | {r['bytes_per_synapse']:.1f} | {r['spike_exact']} "
            f"({r['images']} images) | {r['max_output_diff']:.1e} | {r['spikes_per_image']:.0f} | {r['latency_steps']} |"
        )
    write_atomic(args.out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
