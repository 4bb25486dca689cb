"""Dask-sharded Brian2 validation: images/s with 1 and 2 workers, per-worker memory, compiling
per worker vs sharing one build, and the VGG16 projection.

    .venv/bin/python benchmarks/distributed_scaling.py [--images 21600] [--standalone-images 3600]
        [--repeat 3] [--quick]

All measurements run in one invocation, side by side, on the digits CNN of
``brian_throughput.py`` (trained briefly, T = 4, numpy runtime target unless said):

* the single-process run (``snn.simulate(x)``, no Dask) and the same inputs sharded over a
  ``LocalCluster`` of 1 and of 2 worker processes (one thread each). Both clusters are started
  and warmed up on a few images first (Brian2 imported, first code generation), then the three
  runs of ``--images`` images are timed in ``--repeat`` interleaved rounds (single process,
  1 worker, 2 workers, single process, ...), so that the load of other processes falls on all
  of them alike; images/s = images / wall time of the call; scaling efficiency = rate(2) /
  (2 rate(1)) within one round; every round is kept, and the median and range reported;
* the machine's load average (``os.getloadavg``) at the start, at every round and at the end,
  and the machine's own 1 -> 2 process efficiency (pure-Python, memory-bound, Brian2 without
  Dask) measured in the same run, so that a reader sees whether the machine was quiet;
* per-worker peak resident memory (each worker process's ``VmHWM`` after its runs);
* ``cpp_standalone`` on 2 workers: ``compile="worker"`` (each worker compiles its program; then
  a second call reuses it) vs ``compile="shared"`` (compiled once here, copied by each worker);
* the projection for VGG16 on the 10,000 CIFAR-10 test images over N machines, as arithmetic
  from the measured VGG16 row of ``results/cifar_brian.json`` and the scaling measured here.

Every sharded result is compared with the single-process one (``SimulationResult.compare`` on
the same inputs: spike counts and predictions; for the numpy runs every output exactly).
Writes benchmarks/results/distributed.md and .json (``--quick``: tiny sizes, printed, written
only where ``--out`` is given). (Not named distributed.py: this folder is on ``sys.path`` when it
runs, and would shadow Dask's ``distributed``.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import load_average, machine, write_atomic, write_json_atomic  # noqa: E402

from scttfs_brian.brian.distributed import process_peak_rss_bytes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CIFAR = os.path.join(HERE, "results", "cifar_brian.json")
MiB = 2**20


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown CPU")


def same(a, b, exact_outputs: bool) -> tuple[bool, float]:
    """``a`` against the first ``len(a)`` inputs of ``b`` (:meth:`SimulationResult.compare`):
    spike counts, recorded spike times and predictions equal (outputs too if ``exact_outputs``);
    and the largest output difference."""
    agreement = a.compare(b.select(slice(len(a.predictions))))
    diff = agreement.max_output_difference
    return bool(agreement.exact and (diff == 0.0 or not exact_outputs)), diff


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


def machine_scaling(graph=None, x=None, scale: float = 1.0) -> dict:
    """This machine's own 1 -> 2 process efficiency at the time, without Brian2 or Dask: each
    kernel alone in one process, then in two processes at once (efficiency = alone / together).
    ``scale`` shrinks the kernels (a smoke test)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    out = {}
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        for name, fn, n in (("cpu", spin, 20_000_000), ("memory", gather, 20)):
            n = max(1, int(n * scale))
            pool.submit(fn, max(1, n // 10)).result(), pool.submit(fn, max(1, n // 10)).result()  # both warm
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
    from distributed import Client

    from scttfs_brian.brian.distributed import local_cluster

    lc = local_cluster(n)  # workers without Dask's MALLOC_TRIM_THRESHOLD_ (see its docstring)
    return lc, Client(lc, set_as_default=False)


#: The runs of one round, by number of workers (0: the single process, no Dask), as the JSON names them.
RUNS = {0: "single_process", 1: "1_worker", 2: "2_workers"}


def runtime_rounds(snn, x, recorded, rounds: int) -> tuple[list[dict], list[dict], object]:
    """The single-process run and the runs on 1 and 2 workers, timed in ``rounds`` interleaved
    rounds (each round: single process, 1 worker, 2 workers; both clusters stay up throughout,
    the idle one only exchanging heartbeats). Each result is compared with the first
    single-process one; spike times are checked on the inputs of ``recorded`` (a single-process
    run with ``record=True``), untimed. Returns the rows (one per configuration, rates as the
    median over rounds), the rounds (every wall time, rate, efficiency and the load) and the
    reference result (the first single-process run)."""
    clusters = {}
    try:
        for n in (1, 2):
            clusters[n] = cluster(n)
            snn.simulate(x[: 4 * n], distributed=clusters[n][1], shard_size=4, progress=False)  # warm-up
        snn.simulate(x[:8], progress=False)  # warm-up, as the clusters got
        one = None
        per_round, exact, diffs, timings = [], {0: True, 1: True, 2: True}, {0: 0.0, 1: 0.0, 2: 0.0}, {}
        for r in range(rounds):
            walls, load = {}, load_average()[0]
            for n in (0, 1, 2):  # 0: single process, no Dask
                t0 = time.perf_counter()
                res = (
                    snn.simulate(x, progress=False)
                    if n == 0
                    else snn.simulate(x, distributed=clusters[n][1], progress=False)
                )
                walls[n] = time.perf_counter() - t0
                one = res if one is None else one
                ok, diff = same(res, one, exact_outputs=True)
                exact[n], diffs[n] = exact[n] and ok, max(diffs[n], diff)
                timings[n] = res.timings
            rates = {n: len(x) / w for n, w in walls.items()}
            per_round.append(dict(round=r, load_1min_start=load, wall_s={RUNS[n]: walls[n] for n in walls},
                                  images_per_s={RUNS[n]: rates[n] for n in rates},
                                  efficiency=rates[2] / (2 * rates[1])))  # fmt: skip
            print(f"round {r + 1}/{rounds} (load {load:.2f}): " + ", ".join(
                f"{'single' if n == 0 else f'{n} worker(s)'} {rates[n]:.0f} images/s" for n in rates
            ) + f"; efficiency {per_round[-1]['efficiency']:.0%}", flush=True)  # fmt: skip
        k = len(recorded.predictions)
        rows = []
        for n in (0, 1, 2):
            if n == 0:
                times_ok, peaks = True, [process_peak_rss_bytes() / MiB]
            else:
                c = clusters[n][1]
                times_ok, _ = same(
                    snn.simulate(x[:k], distributed=c, record=True, progress=False), recorded, True
                )
                peaks = sorted(v / MiB for v in c.run(process_peak_rss_bytes).values())
            walls = [p["wall_s"][RUNS[n]] for p in per_round]
            rates = [p["images_per_s"][RUNS[n]] for p in per_round]
            rows.append(dict(
                mode="single process (no Dask)" if n == 0 else "Dask LocalCluster, numpy", workers=max(n, 1),
                images=len(x), wall_s=statistics.median(walls), walls_s=walls,
                images_per_s=statistics.median(rates), images_per_s_all=rates,
                images_per_s_min=min(rates), images_per_s_max=max(rates),
                spike_exact=exact[n], times_exact=times_ok, max_output_diff=diffs[n],
                worker_peak_rss_mib=peaks, **({} if n == 0 else {"worker_seconds": timings[n]}),
            ))  # fmt: skip
    finally:
        for lc, c in clusters.values():
            c.close(), lc.close()
    return rows, per_round, one


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
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--images", type=int, default=21600, help="images of the numpy runs")
    ap.add_argument(
        "--standalone-images", type=int, default=None,
        help="images of the cpp_standalone runs (default 3600; 0 skips them; --quick: 0 unless given)",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved rounds of the single-process / 1-worker / 2-worker runs (median and range reported)")  # fmt: skip
    ap.add_argument("--record-images", type=int, default=1000, help="images whose spike times are compared")
    ap.add_argument(
        "--quick", action="store_true",
        help="tiny sizes, 2 rounds, small controls (a smoke test, about a minute; written only with --out)",
    )  # fmt: skip
    ap.add_argument(
        "--out", default=None, help="output path without suffix (default benchmarks/results/distributed)"
    )
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite the .md from the .json, measure nothing"
    )
    args = ap.parse_args(argv)
    write = args.out is not None or not args.quick
    args.out = args.out or os.path.join(HERE, "results", "distributed")
    if args.report_only:
        with open(args.out + ".json") as f:
            write_atomic(args.out + ".md", report(json.load(f)))
        return 0
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1 (got {args.repeat})")
    control_scale = 1.0
    if args.quick:
        # the cpp_standalone rows compile C++ (a minute or more): only when asked for
        args.images, args.standalone_images = 400, args.standalone_images or 0
        args.repeat, args.record_images, control_scale = 2, min(args.record_images, 50), 0.05
    if args.standalone_images is None:
        args.standalone_images = 3600
    from brian_throughput import trained

    phase_s, t_phase = [], time.perf_counter()  # (phase, seconds), in order

    def phase(name: str) -> None:
        nonlocal t_phase
        phase_s.append([name, time.perf_counter() - t_phase])
        t_phase = time.perf_counter()

    started = datetime.datetime.now(datetime.UTC)
    load_before = load_average()  # before this benchmark loads the machine: other processes only
    snn, data = trained("cnn", 4)
    phase("training")
    reps = math.ceil(args.images / len(data.x_test))
    x = data.x_test.repeat(reps, 1, 1, 1)[: args.images].numpy()
    recorded = snn.simulate(x[: args.record_images], record=True, progress=False)
    phase("reference run with spike times")
    control = machine_scaling(snn.graph, x, control_scale)
    phase("machine controls")
    print("machine scaling:", {k: round(v["efficiency"], 2) for k, v in control.items()}, flush=True)
    runtime, rounds, one = runtime_rounds(snn, x, recorded, args.repeat)
    phase("interleaved rounds (clusters, warm-up, checks included)")
    efficiencies = [r["efficiency"] for r in rounds]
    efficiency = statistics.median(efficiencies)
    standalone = standalone_rows(snn, x[: args.standalone_images], one) if args.standalone_images else []
    phase("cpp_standalone rows")
    shared = next((r for r in standalone if r["mode"].startswith("shared")), None)
    first = next((r for r in standalone if r["mode"].endswith("first call")), None)
    # per-worker compilation on a machine of 2 workers (both compile at once) vs one compilation
    compile_ratio = (first["compile_worker_s"] / 2) / shared["compile_worker_s"] if shared and first else 1.0
    out = dict(
        date=started.isoformat(timespec="seconds"),
        command=".venv/bin/python benchmarks/distributed_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        cpu=cpu_model(), machine=machine(), images=args.images, standalone_images=args.standalone_images,
        record_images=args.record_images, repeat=args.repeat,
        runtime=runtime, rounds=rounds, scaling_efficiency=efficiency,
        scaling_efficiency_range=[min(efficiencies), max(efficiencies)], machine_scaling=control,
        control_scale=control_scale, standalone=standalone,
        projection=projection(efficiency, compile_ratio),
        gpu="not measured: no GPU machine was lent to this task (prepared script: benchmarks/gpu_check.sh)",
        wall_s=(datetime.datetime.now(datetime.UTC) - started).total_seconds(), phase_s=phase_s,
        load_before=load_before, load_after=load_average(),
    )  # fmt: skip
    print(
        json.dumps(
            {k: out[k] for k in ("scaling_efficiency", "scaling_efficiency_range", "wall_s")}, indent=1
        )
    )
    if not write:
        print(report(out))
        return 0
    write_json_atomic(args.out + ".json", out)
    write_atomic(args.out + ".md", report(out))
    return 0


def _loads(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def report(o: dict) -> str:
    p = o["projection"]
    v = p["source"]
    rounds = o.get("rounds", [])  # absent in results written before the interleaved rounds
    cores = p["cores"]
    quiet = o["load_before"][0] < 0.25 * cores
    lines = [
        "# Brian2 on a Dask cluster: scaling, memory, compilation, projection",
        "",
        f"Date: {o['date']} (UTC). Machine: {o['cpu']} (/proc/cpuinfo); {o['machine']}.",
        f"Command: `{o['command'].strip()}` ({o['wall_s'] / 60:.1f} min"
        + "".join(f"; {k} {v:.0f} s" for k, v in o.get("phase_s", []))
        + ").",
        "",
        f"Machine load (`os.getloadavg`, 1 / 5 / 15 min, {cores} cores): before the benchmark started "
        f"{_loads(o['load_before'])}, after it ended {_loads(o['load_after'])}"
        + (
            f"; at the start of each round (1 min, this benchmark's own processes included): "
            f"{_loads(r['load_1min_start'] for r in rounds)}"
            if rounds
            else ""
        )
        + f". The machine was {'quiet' if quiet else '**not quiet**'} when the benchmark started "
        f"(1-min load {'below' if quiet else 'at or above'} a quarter of its cores, before any of its processes ran).",
        "",
        "Network: the digits CNN of `brian_throughput.py` (trained 30 epochs, T = 4), test images repeated.",
        "The sharded runs use `snn.simulate(x, distributed=client)` on a `LocalCluster` of single-threaded",
        "worker processes (`scttfs_brian.brian.distributed.local_cluster`: without Dask's `MALLOC_TRIM_THRESHOLD_`",
        "and statistical profiler; the graph is copied to every worker before the shards start; default",
        "shards: one per worker); the single-process row is `snn.simulate(x)` in",
        "the benchmark's own process. Both clusters are started and warmed up first (cluster start-up and",
        f"warm-up calls not timed), then the three runs are timed in {o['repeat']} interleaved rounds (single",
        "process, 1 worker, 2 workers; then again), so that the load of other processes falls on all of",
        "them alike. Wall time of the call (shards, transfers and merge included); the timed calls return",
        "spike counts, outputs and predictions (no spike times, as a validation does). `spike-exact`: in",
        "every round, `SimulationResult.compare` finds every spike count and prediction equal to the first",
        "single-process numpy run, and for the numpy rows every output too (`max output diff` 0); `spike",
        "times exact`: a separate call with `record=True` on the first images gives every neuron's",
        "(t_enc, t_cal) equal to the single-process run's.",
        "",
        "## Images/s with 1 and 2 workers (numpy runtime target)",
        "",
        "| run | workers | images | wall (s), median | images/s, median | images/s, min - max "
        "| peak RSS per worker (MiB) | spike-exact "
        f"| spike times exact ({o['record_images']} images) | max output diff |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in o["runtime"]:
        mem = ", ".join(f"{m:.0f}" for m in r["worker_peak_rss_mib"])
        lo, hi = r.get("images_per_s_min", r["images_per_s"]), r.get("images_per_s_max", r["images_per_s"])
        lines.append(
            f"| {r['mode']} | {r['workers']} | {r['images']} | {r['wall_s']:.1f} | {r['images_per_s']:.0f} | "
            f"{lo:.0f} - {hi:.0f} | {mem} | {r['spike_exact']} | {r['times_exact']} | {r['max_output_diff']:.1e} |"
        )
    eff = o["scaling_efficiency"]
    lo, hi = o.get("scaling_efficiency_range", [eff, eff])
    lines += [
        "",
        f"**Scaling efficiency 1 -> 2 workers: {eff:.0%}, median of {len(rounds) or 1} round(s) (min - max "
        f"{lo:.0%} - {hi:.0%})**: images/s with 2 workers / (2 x images/s with 1 worker), both from the",
        f"same round. The goal is >= 90 %: {'met by the median' if eff >= 0.9 else 'not met by the median'}"
        f"{' and by every round' if lo >= 0.9 else ''}.",
    ]
    if rounds:
        lines += [
            "",
            "| round | 1-min load at its start | single process (images/s) | 1 worker (images/s) "
            "| 2 workers (images/s) | efficiency |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rounds:
            q = [r["images_per_s"][RUNS[n]] for n in (0, 1, 2)]
            lines.append(
                f"| {r['round'] + 1} | {r['load_1min_start']:.2f} | {q[0]:.0f} | {q[1]:.0f} | {q[2]:.0f} | "
                f"{r['efficiency']:.0%} |"
            )
    ms = o["machine_scaling"]
    lines += [
        "",
        f"The machine has {cores} cores; runs vary with the load of other processes, so judge the scaling",
        "against the machine's own 1 -> 2 process efficiency, measured once in the same run before the rounds",
        "without Brian2 or Dask (a kernel alone in one process, then in two processes at once; efficiency =",
        f"time alone / time together): pure-Python arithmetic {ms['cpu']['efficiency']:.0%}, random reads from a",
        f"128 MiB array (memory-bound, like a synaptic update) {ms['memory']['efficiency']:.0%}.",
        "Brian2's numpy runtime target is memory-bound (gathers over millions of synapses). Brian2 itself",
        "without Dask, two plain processes each simulating half the images at once vs one alone: "
        f"{ms['brian2']['efficiency']:.0%}."
        + (
            f" (Controls shrunk x{o['control_scale']:g} for a smoke test.)"
            if o.get("control_scale", 1.0) != 1.0
            else ""
        ),
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
    if not o["standalone"]:
        lines.append("| not measured in this run (`--standalone-images 0`) | | | | | | | | | | |")
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
