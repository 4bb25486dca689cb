"""A cpp_standalone network compiled once and run again per batch vs one compilation per call.

For ResNet20 (CIFAR shape, random weights, T = 6, one copy) and the digits CNN, in one process
each: ``snn.simulate(x, device="cpp_standalone")`` on one batch (generates, compiles and runs a
program: what every call costs) against ``snn.compile(batch_size)`` followed by
``program.simulate(x)`` on ``--batches`` batches (each a rerun of the same program with a new
input table). Both are checked spike for spike against the torch twin.

    .venv/bin/python benchmarks/compiled_program.py [--batches 3] [--models resnet20 digits-cnn]

Writes benchmarks/results/compiled_program.md and .json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, run_in_fresh_process, write_atomic, write_json_atomic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SETUPS = {  # model -> (input shape, images per batch, copies)
    "resnet20": ((3, 32, 32), 4, 1),
    "digits-cnn": ((1, 8, 8), 256, 64),
}


def measure(name: str, batches: int, queue) -> None:
    import torch

    from scttfs_brian import convert
    from scttfs_brian.models import DigitsCNN, build_model, randomize_batchnorm

    shape, batch, copies = SETUPS[name]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = DigitsCNN() if name == "digits-cnn" else build_model(name, 10)
    model = randomize_batchnorm(model, generator=g).eval()
    snn = convert(model, shape, code="auto", calibration_data=torch.rand(32, *shape, generator=g), T=6)
    xs = [torch.rand(batch, *shape, generator=torch.Generator().manual_seed(10 + k)) for k in range(batches)]

    def exact(res, x):
        twin = snn.simulate(x, backend="torch", record=True)
        return res.compare(twin).spikes_exact

    t0 = time.perf_counter()
    once = snn.simulate(xs[0], device="cpp_standalone", copies=copies, record=True, progress=False)
    per_call = time.perf_counter() - t0
    ok = exact(once, xs[0])
    t0 = time.perf_counter()
    with snn.compile(batch, copies=copies) as prog:
        compile_s = time.perf_counter() - t0
        walls, setups, runs = [], [], []
        for x in xs:
            t1 = time.perf_counter()
            res = prog.simulate(x, record=True, progress=False)
            walls.append(time.perf_counter() - t1)
            setups.append(res.timings["setup"])
            runs.append(res.timings["run"])
            ok = ok and exact(res, x)
        reruns = prog.runs
    queue.put(dict(
        model=name, images_per_batch=batch, copies=copies, batches=batches, simulate_call_s=per_call,
        compile_program_s=compile_s, rerun_wall_s=walls, rerun_setup_s=setups, rerun_run_s=runs,
        program_runs=reruns, spike_exact=bool(ok),
        speedup_per_batch=per_call / (sum(walls) / len(walls)),
    ))  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "compiled_program"))
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        r = run_in_fresh_process(measure, name, args.batches)
        rows.append(r)
        print(r, flush=True)
    md = [
        "# A compiled standalone program, run again for every batch",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/compiled_program.py`.",
        "T = 6, random weights (randomized BatchNorm), kernels fitted on 32 random inputs, cpp_standalone with",
        "generated connectivity. `simulate()` per call: `snn.simulate(x, device='cpp_standalone')` on one batch",
        "(code generation + compilation + run, what every call costs). `compile_program`: `snn.compile(batch)`",
        "once, then `program.simulate(x)` per batch: a rerun of the same program with the batch as the input",
        "`TimedArray`'s values (wall time per batch includes the program's setup, its run and reading the",
        "results). Both measured in the same process; `spike-exact` against the torch twin on every batch.",
        "",
        "| model | images / batch | copies | `simulate()` per call (s) | `compile_program` once (s) | per batch after that: wall (s) | setup (s) | run (s) | speed-up per batch | program runs | spike-exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        md.append(
            f"| {r['model']} | {r['images_per_batch']} | {r['copies']} | {r['simulate_call_s']:.1f} | "
            f"{r['compile_program_s']:.1f} | {mean(r['rerun_wall_s']):.2f} | {mean(r['rerun_setup_s']):.2f} | "
            f"{mean(r['rerun_run_s']):.2f} | x{r['speedup_per_batch']:.0f} | {r['program_runs']} | "
            f"{r['spike_exact']} ({r['batches']} batches) |"
        )
    write_atomic(args.out + ".md", "\n".join(md) + "\n")
    write_json_atomic(args.out + ".json", {"machine": machine(), "rows": rows})
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
