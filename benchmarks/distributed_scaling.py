"""Dask-sharded Brian2 validation: images/s with 1 and 2 workers, per-worker memory, compiling
per worker vs sharing one build, and the VGG16 projection.

    .venv/bin/python benchmarks/distributed_scaling.py [--images 21600] [--standalone-images 3600] [--quick]

All measurements run in one invocation, side by side, on the digits CNN of
``brian_throughput.py`` (trained briefly, T = 4, numpy runtime target unless said):

* the single-process run (``snn.simulate(x)``, no Dask) and the same inputs sharded over a
  ``LocalCluster`` of 1 and of 2 worker processes (one thread each); each cluster is warmed up
  on a few images first (Brian2 imported, first code generation), then timed on ``--images``
  images; images/s = images / wall time of the call; scaling efficiency = rate(2) / (2 rate(1));
* per-worker peak resident memory (each worker process's ``ru_maxrss`` after its run);
* ``cpp_standalone`` on 2 workers: ``compile="worker"`` (each worker compiles its program; then
  a second call reuses it) vs ``compile="shared"`` (compiled once here, copied by each worker);
* the projection for VGG16 on the 10,000 CIFAR-10 test images over N machines, as arithmetic
  from the measured VGG16 row of ``results/cifar_brian.json`` and the scaling measured here.

Every sharded result is compared with the single-process one (spike counts and predictions; for
the numpy runs every field exactly). Writes benchmarks/results/distributed.md and .json. (Not named
distributed.py: this folder is on ``sys.path`` when it runs, and would shadow Dask's ``distributed``.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, write_atomic, write_json_atomic  # noqa: E402

from scttfs_brian.brian.distributed import process_peak_rss_bytes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CIFAR = os.path.join(HERE, "results", "cifar_brian.json")
MiB = 2**20


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown CPU")


def same(a, b, exact_outputs: bool) -> tuple[bool, float]:
    """``a`` against the first ``len(a)`` inputs of ``b``: spike counts, spike times and
    predictions equal (outputs too if ``exact_outputs``); and the largest output difference."""
    import numpy as np

    n = len(a.predictions)
    ok = np.array_equal(a.predictions, b.predictions[:n]) and set(a.spike_counts) == set(b.spike_counts)
    ok = ok and all(np.array_equal(a.spike_counts[k], b.spike_counts[k][:n]) for k in a.spike_counts)
    ok = ok and all(
        np.array_equal(x, y[:n]) for k in a.spike_times for x, y in zip(a.spike_times[k], b.spike_times[k])
    )
    diff = float(np.abs(a.outputs - b.outputs[:n]).max())
    return bool(ok and (diff == 0.0 or not exact_outputs)), diff


def spin(n: int) -> float:
    """Pure-Python arithmetic (one core, no memory traffic): seconds taken."""
    t0, acc = time.perf_counter(), 0
    for i in range(n):
        acc += i * i
    return time.perf_counter() - t0


def gather(n: int) -> float:
    """Random reads from a 128 MiB array, as a synaptic update does (memory-bound): seconds."""
    import numpy as np

    rng = np.random.default_rng(0)
    values, index = rng.random(2**24), rng.integers(0, 2**24, 2**24)
    t0 = time.perf_counter()
    for _ in range(n):
        values[index].sum()
    return time.perf_counter() - t0


def brian_alone(graph, x) -> float:
    """One single-process Brian2 run (numpy target) of ``x``: seconds, after a warm-up."""
    from scttfs_brian.brian import simulate

    simulate(graph, x[:8], progress=False)
    t0 = time.perf_counter()
    simulate(graph, x, progress=False)
    return time.perf_counter() - t0


def machine_scaling(graph=None, x=None) -> dict:
    """This machine's own 1 -> 2 process efficiency at the time, without Brian2 or Dask: each
    kernel alone in one process, then in two processes at once (efficiency = alone / together)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    out = {}
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        for name, fn, n in (("cpu", spin, 20_000_000), ("memory", gather, 20)):
            pool.submit(fn, n // 10).result(), pool.submit(fn, n // 10).result()  # both processes warm
            alone = pool.submit(fn, n).result()
            together = [f.result() for f in [pool.submit(fn, n), pool.submit(fn, n)]]
            out[name] = dict(alone_s=alone, together_s=together, efficiency=alone / (sum(together) / 2))
        if graph is not None:  # Brian2 itself in two plain processes (no Dask), half the images each
            half = x[: len(x) // 2]
            alone = pool.submit(brian_alone, graph, half).result()
            together = [f.result() for f in [pool.submit(brian_alone, graph, half) for _ in range(2)]]
            out["brian2"] = dict(alone_s=alone, together_s=together, efficiency=alone / (sum(together) / 2))
    return out


def cluster(n: int):
    from distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return lc, Client(lc, set_as_default=False)


def runtime_rows(snn, x, one, wall_one, recorded, repeat: int) -> list[dict]:
    """Timed runs without spike times (a validation's output); spike times are checked on the
    inputs of ``recorded`` (a single-process run with ``record=True``), untimed."""
    k = len(recorded.predictions)
    rows = [dict(mode="single process (no Dask)", workers=1, images=len(x), wall_s=wall_one,
                 images_per_s=len(x) / wall_one, spike_exact=True, times_exact=True, max_output_diff=0.0,
                 worker_peak_rss_mib=[process_peak_rss_bytes() / MiB])]  # fmt: skip
    for n in (1, 2):
        lc, c = cluster(n)
        try:
            snn.simulate(x[: 4 * n], distributed=c, shard_size=4, progress=False)  # warm-up
            walls = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                res = snn.simulate(x, distributed=c, progress=False)
                walls.append(time.perf_counter() - t0)
            ok, diff = same(res, one, exact_outputs=True)
            times_ok, _ = same(
                snn.simulate(x[:k], distributed=c, record=True, progress=False), recorded, True
            )
            peaks = sorted(v / MiB for v in c.run(process_peak_rss_bytes).values())
        finally:
            c.close(), lc.close()
        wall = min(walls)
        rows.append(dict(mode="Dask LocalCluster, numpy", workers=n, images=len(x), wall_s=wall, walls_s=walls,
                         images_per_s=len(x) / wall, spike_exact=ok, times_exact=times_ok, max_output_diff=diff,
                         worker_peak_rss_mib=peaks, worker_seconds=res.timings))  # fmt: skip
        print(f"{n} worker(s): {len(x) / wall:.0f} images/s, spike-exact {ok} {times_ok}", flush=True)
    return rows


def standalone_rows(snn, x, one) -> list[dict]:
    lc, c = cluster(2)
    rows = []
    try:
        snn.simulate(x[:4], distributed=c, shard_size=2, progress=False)  # warm-up (runtime)
        for label, mode in (("per worker, first call", "worker"), ("per worker, second call", "worker"),
                            ("shared (compiled once here)", "shared")):  # fmt: skip
            t0 = time.perf_counter()
            res = snn.simulate(x, distributed=c, target="cpp_standalone", compile=mode, progress=False)
            wall = time.perf_counter() - t0
            ok, diff = same(res, one, exact_outputs=False)
            t = res.timings
            rows.append(dict(
                mode=label, workers=2, images=len(x), wall_s=wall, images_per_s=len(x) / wall,
                compile_worker_s=t.get("compile", 0.0) + t.get("build", 0.0), copy_worker_s=t.get("copy", 0.0),
                setup_worker_s=t.get("setup", 0.0), run_worker_s=t.get("run", 0.0),
                program_peak_rss_mib=res.memory.get("program_peak_rss_bytes", 0) / MiB,
                worker_peak_rss_mib=sorted(v / MiB for v in c.run(process_peak_rss_bytes).values()),
                spike_exact=ok, max_output_diff=diff,
            ))  # fmt: skip
            print(f"cpp_standalone {label}: {wall:.1f} s, spike-exact {ok}", flush=True)
    finally:
        c.close(), lc.close()
    return rows


def projection(efficiency: float, compile_ratio: float) -> dict:
    """VGG16 on 10,000 CIFAR-10 images over N machines like this one, from the measured row."""
    with open(CIFAR) as f:
        vgg = next(
            r for r in json.load(f)["rows"] if r["model"] == "vgg16" and r["target"] == "cpp_standalone"
        )
    # workers per machine like this one: one per core, as many programs as its memory holds
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_machine = max(1, min(os.cpu_count() or 1, int(ram / (vgg["program_peak_rss_mib"] * MiB))))
    t_img, t_compile, t_setup = vgg["s_per_image"], vgg["compile_s"], vgg["setup_s"]
    rows = []
    for n in (1, 2, 4, 8, 16, 32):
        per_worker = math.ceil(10_000 / (n * per_machine))
        loop = per_worker * t_img / efficiency
        rows.append(dict(machines=n, workers=n * per_machine, images_per_worker=per_worker,
                         shared_s=t_compile + t_setup + loop, per_worker_s=t_compile * compile_ratio + t_setup + loop))  # fmt: skip
    return dict(source=vgg, workers_per_machine=per_machine, cores=os.cpu_count(), ram_gib=ram / 2**30, efficiency=efficiency,
                compile_ratio=compile_ratio, rows=rows)  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=21600, help="images of the numpy runs")
    ap.add_argument("--standalone-images", type=int, default=3600, help="images of the cpp_standalone runs")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per configuration (the best counts)")
    ap.add_argument("--record-images", type=int, default=1000, help="images whose spike times are compared")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; results not written)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "distributed"))
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite the .md from the .json, measure nothing"
    )
    args = ap.parse_args(argv)
    if args.report_only:
        with open(args.out + ".json") as f:
            write_atomic(args.out + ".md", report(json.load(f)))
        return 0
    if args.quick:
        args.images, args.standalone_images, args.repeat = 400, min(args.standalone_images, 200), 1
    from brian_throughput import trained

    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    snn, data = trained("cnn", 4)
    reps = math.ceil(args.images / len(data.x_test))
    x = data.x_test.repeat(reps, 1, 1, 1)[: args.images].numpy()
    snn.simulate(x[:8], progress=False)  # warm-up, as the clusters get
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        one = snn.simulate(x, progress=False)
        walls.append(time.perf_counter() - t0)
    recorded = snn.simulate(x[: args.record_images], record=True, progress=False)
    control = machine_scaling(snn.graph, x)
    print("machine scaling:", {k: round(v["efficiency"], 2) for k, v in control.items()}, flush=True)
    runtime = runtime_rows(snn, x, one, min(walls), recorded, args.repeat)
    r1, r2 = (next(r["images_per_s"] for r in runtime[1:] if r["workers"] == n) for n in (1, 2))
    efficiency = r2 / (2 * r1)
    standalone = standalone_rows(snn, x[: args.standalone_images], one) if args.standalone_images else []
    shared = next((r for r in standalone if r["mode"].startswith("shared")), None)
    first = next((r for r in standalone if r["mode"].endswith("first call")), None)
    # per-worker compilation on a machine of 2 workers (both compile at once) vs one compilation
    compile_ratio = (first["compile_worker_s"] / 2) / shared["compile_worker_s"] if shared and first else 1.0
    out = dict(
        date=started.isoformat(timespec="seconds"),
        command=".venv/bin/python benchmarks/distributed_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        cpu=cpu_model(), machine=machine(), images=args.images, standalone_images=args.standalone_images,
        record_images=args.record_images, repeat=args.repeat,
        runtime=runtime, scaling_efficiency=efficiency, machine_scaling=control, standalone=standalone,
        projection=projection(efficiency, compile_ratio),
        gpu="not measured: no GPU machine was lent to this task (prepared script: benchmarks/gpu_check.sh)",
        wall_s=(datetime.datetime.now(datetime.UTC) - started).total_seconds(),
        load_before=load_before, load_after=os.getloadavg(),
    )  # fmt: skip
    print(json.dumps({k: out[k] for k in ("scaling_efficiency", "wall_s")}, indent=1))
    if args.quick:
        print(report(out))
        return 0
    write_json_atomic(args.out + ".json", out)
    write_atomic(args.out + ".md", report(out))
    return 0


def report(o: dict) -> str:
    p = o["projection"]
    v = p["source"]
    lines = [
        "# Brian2 on a Dask cluster: scaling, memory, compilation, projection",
        "",
        f"Date: {o['date']} (UTC). Machine: {o['cpu']} (/proc/cpuinfo); {o['machine']}.",
        f"Command: `{o['command'].strip()}` ({o['wall_s'] / 60:.1f} min). Load average (1, 5, 15 min) of the",
        f"machine before: {', '.join(f'{v:.2f}' for v in o['load_before'])}; after: "
        f"{', '.join(f'{v:.2f}' for v in o['load_after'])} (other sessions share its cores). Network: the digits CNN of",
        "`brian_throughput.py` (trained 30 epochs, T = 4), test images repeated. The sharded runs use",
        "`snn.simulate(x, distributed=client)` on a `LocalCluster` of single-threaded worker processes",
        "(default shards: one per worker); the single-process row is `snn.simulate(x)` in the benchmark's",
        "own process. Wall time of the call, the best of `repeat` calls (shards, transfers and merge",
        "included; cluster start-up and a warm-up call excluded); the timed calls return spike counts,",
        "outputs and predictions (no spike times, as a validation does). `spike-exact`: every spike",
        "count and prediction equal to the single-process numpy run, and for the numpy rows every",
        "output too (`max output diff` 0); `spike times exact`: a separate call with `record=True` on",
        "the first images gives every neuron's (t_enc, t_cal) equal to the single-process run's.",
        "",
        "## Images/s with 1 and 2 workers (numpy runtime target)",
        "",
        "| run | workers | images | wall (s) | images/s | peak RSS per worker (MiB) | spike-exact "
        f"| spike times exact ({o['record_images']} images) | max output diff |",
        "|---|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in o["runtime"]:
        mem = ", ".join(f"{m:.0f}" for m in r["worker_peak_rss_mib"])
        lines.append(
            f"| {r['mode']} | {r['workers']} | {r['images']} | {r['wall_s']:.1f} | {r['images_per_s']:.0f} | "
            f"{mem} | {r['spike_exact']} | {r['times_exact']} | {r['max_output_diff']:.1e} |"
        )
    eff = o["scaling_efficiency"]
    lines += [
        "",
        f"**Scaling efficiency 1 -> 2 workers: {eff:.0%}** (images/s with 2 workers / (2 x images/s with",
        f"1 worker)); the goal is >= 90 %. {'Met.' if eff >= 0.9 else 'Not met on this run.'} The machine",
        f"has {p['cores']} cores, shared with other sessions' processes: runs vary with their load, so judge",
        "the scaling against the machine's own efficiency, measured in the same run:",
        "",
        "The machine's own 1 -> 2 process efficiency, measured in the same run without Brian2 or Dask",
        "(a kernel alone in one process, then in two processes at once; efficiency = time alone / time",
        f"together): pure-Python arithmetic {o['machine_scaling']['cpu']['efficiency']:.0%}, random reads from a",
        f"128 MiB array (memory-bound, like a synaptic update) {o['machine_scaling']['memory']['efficiency']:.0%}.",
        "Brian2's numpy runtime target is memory-bound (gathers over millions of synapses). Brian2 itself",
        f"without Dask, two plain processes each simulating half the images at once vs one alone: "
        f"{o['machine_scaling']['brian2']['efficiency']:.0%}.",
        "The single-process row is the Dask overhead's reference (1 worker vs no Dask); its memory is the",
        "benchmark's own process (torch and the training included), not comparable with a worker's.",
        "",
        "## cpp_standalone: compiling per worker vs sharing one build (2 workers)",
        "",
        "Worker-seconds are summed over the shards (both workers work at the same time). `compile` =",
        "build + code generation + `make` of `compile_program`; with `shared` it ran once, here; `copy` =",
        "each worker copying the build into its Dask scratch directory.",
        "",
        "| mode | images | wall (s) | compile (worker-s) | copy (worker-s) | setup (worker-s) | run (worker-s) "
        "| program peak (MiB) | worker peak RSS (MiB) | spike-exact | max output diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in o["standalone"]:
        mem = ", ".join(f"{m:.0f}" for m in r["worker_peak_rss_mib"])
        lines.append(
            f"| {r['mode']} | {r['images']} | {r['wall_s']:.1f} | {r['compile_worker_s']:.1f} | "
            f"{r['copy_worker_s']:.2f} | {r['setup_worker_s']:.1f} | {r['run_worker_s']:.2f} | "
            f"{r['program_peak_rss_mib']:.0f} | {mem} | {r['spike_exact']} | {r['max_output_diff']:.1e} |"
        )
    lines += [
        "",
        "## Projection: VGG16, 10,000 CIFAR-10 test images, N machines like this one",
        "",
        "From `benchmarks/results/cifar_brian.md` (VGG16, cpp_standalone, generated connectivity, one copy,",
        f"measured on this machine): t_image = {v['s_per_image']:.2f} s/image (the program's loop),",
        f"t_compile = {v['compile_s']:.0f} s, t_setup = {v['setup_s']:.0f} s (creating {v['synapses'] / 1e6:.0f} M synapses),",
        f"program peak {v['program_peak_rss_mib'] / 1024:.1f} GiB. Workers per machine w = {p['workers_per_machine']}",
        f"(one per core of its {p['cores']}, at most as many programs as its {p['ram_gib']:.0f} GiB hold). Each worker",
        "runs one shard of ceil(10,000 / (N w)) images",
        f"as one program run. Scaling efficiency e = {p['efficiency']:.2f} (measured above, 1 -> 2 workers),",
        "applied to the per-worker rate; machines are independent (a shard's inputs are 24 KiB per image:",
        "3 x 32 x 32 float64).",
        "",
        "    time(N) = t_compile' + t_setup + ceil(10000 / (N w)) x t_image / e",
        "",
        "with t_compile' = t_compile for a shared build (compiled once, copied) and",
        f"t_compile x {p['compile_ratio']:.2f} when each worker compiles (the ratio measured above on the digits",
        "CNN: per-worker compile time with both workers compiling at once, over one compilation alone).",
        "Not measured on VGG16 itself; an estimate from those numbers. A program holds its whole shard's",
        "input table (the first layer's potentials per image) in memory: where that and the network do not",
        "fit, a worker runs its shard as several program runs (``shard_size``), each adding t_setup; the",
        "table assumes one run per worker.",
        "",
        "| machines N | workers | images per worker | shared build: time | per-worker compile: time |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in p["rows"]:
        lines.append(
            f"| {r['machines']} | {r['workers']} | {r['images_per_worker']} | {_hms(r['shared_s'])} | "
            f"{_hms(r['per_worker_s'])} |"
        )
    lines += [
        "",
        "## GPU (cuda_standalone)",
        "",
        "Not measured: no GPU machine was lent to this task. The prepared script is",
        "`benchmarks/gpu_check.sh` (the cuda_standalone check and the throughput benchmark's",
        "cuda_standalone row, in one run; see its header).",
        "",
    ]
    return "\n".join(lines)


def _hms(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


if __name__ == "__main__":
    sys.exit(main())
