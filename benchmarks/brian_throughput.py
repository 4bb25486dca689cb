"""Images per second of the batched Brian2 run vs one image per run(), on the digits data.

Each configuration runs in a fresh subprocess (so its peak memory is its own); the batched
runs and the one-image-per-run baseline run on the same machine in the same invocation, and
the ratio is what to compare (absolute numbers move with machine load).

    .venv/bin/python benchmarks/brian_throughput.py [--repeat 8] [--quick]

Writes benchmarks/results/brian_throughput.md and .json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, peak_rss_mib, run_in_fresh_process, write_atomic, write_json_atomic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def digits_cnn():
    from torch import nn

    # the CNN of the network tests (conv + BN + avgpool + bias), on 8x8 digits
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def trained(name: str, T: int):
    """Train the model briefly on digits (seeded) and convert it with auto-fitted kernels."""
    import torch
    import torch.nn.functional as F

    from scttfs_brian import convert
    from scttfs_brian.data import digits
    from scttfs_brian.models import DigitsMLP

    torch.manual_seed(0)
    data = digits(normalize=False)
    model = DigitsMLP(hidden=128) if name == "mlp" else digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        perm = torch.randperm(len(data.x_train), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    snn = convert(model, data.input_shape, code="auto", calibration_data=data.x_train[:512], T=T)
    return snn, data


def measure(name: str, T: int, repeat: int, copies: int | None, per_image: int, target: str, queue) -> None:
    """One configuration in a fresh process: batched (copies) or one image per run."""
    import numpy as np

    from scttfs_brian.brian import simulate, synapses_per_copy

    snn, data = trained(name, T)
    x = data.x_test.repeat(repeat, 1, 1, 1)
    y = np.tile(data.y_test.numpy(), repeat)
    if per_image:
        x, y = x[:per_image], y[:per_image]
    base_rss = peak_rss_mib()
    t0 = time.perf_counter()
    if per_image:
        res = simulate(snn.graph, x, copies=1, images_per_run=1, progress=False)
    else:
        res = simulate(snn.graph, x, copies=copies, target=target, progress=False)
    wall = time.perf_counter() - t0
    queue.put(
        dict(
            model=name, T=T, images=len(x), copies=1 if per_image else copies, per_image=bool(per_image),
            target=target, connectivity="generated" if target != "numpy" else "arrays",
            # code generation + make + the program's setup (creating synapses): all before the loop
            compile_s=sum(res.timings.get(k, 0.0) for k in ("codegen", "compile", "setup")),
            build_s=res.timings["build"], run_s=res.timings["run"], wall_s=wall,
            images_per_s=len(x) / res.timings["run"], accuracy=res.accuracy(y),
            synapses=synapses_per_copy(snn.graph) * (1 if per_image else copies),
            peak_rss_mib=peak_rss_mib(), rss_before_mib=base_rss,
            spikes_per_image=float(res.spikes_per_input.mean()), latency_steps=res.latency_steps,
        )
    )


def run_config(*args) -> dict:
    return run_in_fresh_process(measure, *args)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=8, help="test split repetitions (8 x 450 = 3600 images)")
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--baseline-images", type=int, default=40, help="images for the one-image-per-run baseline")
    ap.add_argument("--quick", action="store_true", help="small run for a smoke test")
    ap.add_argument(
        "--standalone-targets", nargs="*", default=["cpp_standalone"],
        help="standalone targets measured on the same batch (add cuda_standalone on a GPU machine with brian2cuda)",
    )
    ap.add_argument("--out", default=os.path.join(HERE, "results", "brian_throughput"))
    args = ap.parse_args(argv)
    if "cuda_standalone" in args.standalone_targets:
        from scttfs_brian.brian.devices import cuda_available

        ok, why = cuda_available()
        if not ok:
            ap.error(f"cuda_standalone cannot be measured here: {why}")
    if args.quick:
        args.repeat, args.baseline_images = 1, 5
    plan = {"mlp": [64, 256, 1024], "cnn": [16, 64, 256]}
    standalone = {"mlp": 256, "cnn": 64}  # one compiled program for all images, same network
    rows = []
    for name, copies_list in plan.items():
        base = run_config(name, args.T, args.repeat, None, args.baseline_images, "numpy")
        rows.append(base)
        print(f"{name}: one image per run: {base['images_per_s']:.1f} images/s", flush=True)
        configs = [(c, "numpy") for c in (copies_list if not args.quick else copies_list[:1])]
        if not args.quick:
            configs += [(standalone[name], t) for t in args.standalone_targets]
        for copies, target in configs:
            r = run_config(name, args.T, args.repeat, copies, 0, target)
            r["speedup"] = r["images_per_s"] / base["images_per_s"]
            rows.append(r)
            print(
                f"{name}: {target}, {copies} copies: {r['images_per_s']:.0f} images/s over {r['images']} images "
                f"(x{r['speedup']:.0f}), build {r['build_s']:.2f} s, compile {r['compile_s']:.1f} s, "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    md = [
        "# Brian2 throughput: batched runs vs one image per `run()`",
        "",
        f"Machine: {machine()}. Runtime mode, numpy target, T = {args.T}, dt = 1 ms.",
        "Command: `.venv/bin/python benchmarks/brian_throughput.py"
        + (" --quick" if args.quick else "")
        + "`. Each row runs in a fresh process; the speed-up is against the one-image-per-run",
        "baseline of the same model measured in the same invocation (network built once, one `run()` per image).",
        "images/s counts simulation time only; the build (network construction) and, for cpp_standalone,",
        "the code generation + C++ compilation + the program's setup (creating the synapses, by generated",
        "code: `connectivity='generated'`, the standalone default) are reported separately (the program is",
        "compiled once per network and runs all images in one run; the runtime rows use the numpy target).",
        "",
        "| model | target | mode | images | copies | synapses | build (s) | compile (s) | run (s) | images/s | speed-up | peak RSS (MiB) | accuracy | spikes/image |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mode = "one image per run" if r["per_image"] else "copies x pipelined windows"
        speedup = "x{:.0f}".format(r["speedup"]) if "speedup" in r else "1"
        md.append(
            f"| {r['model']} | {r['target']} | {mode} | {r['images']} | {r['copies']} | {r['synapses']:,} | "
            f"{r['build_s']:.2f} | {r['compile_s']:.1f} | "
            f"{r['run_s']:.2f} | {r['images_per_s']:.1f} | {speedup} | "
            f"{r['peak_rss_mib']:.0f} | {r['accuracy']:.4f} | {r['spikes_per_image']:.0f} |"
        )
    write_atomic(args.out + ".md", "\n".join(md) + "\n")
    write_json_atomic(args.out + ".json", {"machine": machine(), "T": args.T, "rows": rows})
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
