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
    import numpy as np
    import torch

    from scttfs_brian import convert
    from scttfs_brian.brian import simulate, synapses_per_copy
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
    res = simulate(snn.graph, x, copies=copies, shared_weights=shared, target=target, record=True, progress=False)
    peak = peak_rss_mib()
    twin = snn.simulate(x, backend="torch", record=True)
    exact = all(
        np.array_equal(a, b) for k in twin.spike_times for a, b in zip(res.spike_times[k], twin.spike_times[k])
    )
    queue.put(
        dict(
            model=model_name, T=T, images=images, copies=copies, shared_weights=shared, target=target,
            synapses=n_syn, neurons_per_copy=sum(l.size for l in snn.graph.layers),
            convert_s=convert_s, build_s=res.timings["build"], run_s=res.timings["run"],
            s_per_image=res.timings["run"] / images, peak_rss_mib=peak, rss_before_build_mib=rss0,
            bytes_per_synapse=(peak - rss0) * 2**20 / n_syn, spike_exact=bool(exact),
            max_output_diff=float(np.abs(res.outputs - twin.outputs).max()),
            predictions_equal=bool(np.array_equal(res.predictions, twin.predictions)),
            spikes_per_image=float(res.spikes_per_input.mean()), latency_steps=res.latency_steps,
        )
    )


def run_config(*args) -> dict:
    try:
        return run_in_fresh_process(measure, *args)
    except RuntimeError as err:  # e.g. killed for memory: recorded, the other configurations go on
        return {"error": str(err)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet20", "vgg16"])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--fresh", action="store_true", help="rerun configurations already measured")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "cifar_brian"))
    args = ap.parse_args(argv)
    done = {}
    if os.path.exists(args.out + ".json") and not args.fresh:
        with open(args.out + ".json") as f:
            done = {r["key"]: r for r in json.load(f)["rows"]}
    plan = []
    for name in args.models:
        plan += [(name, False), (name, True)] if name == "resnet20" else [(name, True)]
    rows = []
    for name, shared in plan:
        key = f"{name}-{'shared' if shared else 'per-synapse'}-{args.images}-T{args.T}"
        if key in done:
            rows.append(done[key])
            print(f"{key}: done before, skipped", flush=True)
            continue
        r = run_config(name, args.images, 1, shared, args.T, "numpy")
        r["key"] = key
        rows.append(r)
        print(key, r, flush=True)
        write_json_atomic(args.out + ".json", {"machine": machine(), "rows": rows})
    md = [
        "# CIFAR-sized networks in Brian2",
        "",
        f"Machine: {machine()}. Runtime mode, numpy target, one network copy, dt = 1 ms.",
        "Command: `.venv/bin/python benchmarks/cifar_brian.py`. Random weights, randomized BatchNorm",
        "statistics, kernels fitted by `code_from_activations` on 32 random inputs; `spike-exact` compares",
        "every neuron's (t_enc, t_cal) with the torch twin (float64). Bytes per synapse = resident memory",
        "added between the start of the build and the end of the run, divided by the synapses (an upper",
        "bound: it includes neurons, monitors and the run's temporaries).",
        "",
        "| model | weights | T | synapses | build (s) | s / image | peak RSS (MiB) | bytes / synapse | spike-exact | max output diff | spikes / image | latency (steps) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['key']} | | | | | | | | failed: {r['error']} | | | |")
            continue
        md.append(
            f"| {r['model']} | {'shared (linked index)' if r['shared_weights'] else 'per synapse'} | {r['T']} | "
            f"{r['synapses']:,} | {r['build_s']:.1f} | {r['s_per_image']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['bytes_per_synapse']:.1f} | {r['spike_exact']} | {r['max_output_diff']:.1e} | "
            f"{r['spikes_per_image']:.0f} | {r['latency_steps']} |"
        )
    write_atomic(args.out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
