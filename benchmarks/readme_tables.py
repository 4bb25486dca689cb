"""The README's Performance and Scaling-up numbers, written from the committed benchmark results.

Every block of README.md between a marker line ``<!-- NAME: python benchmarks/readme_tables.py
--readme README.md -->`` and ``<!-- end of NAME -->`` is generated here from JSON files in
``benchmarks/results/``; each block names its source files, the script that wrote them (or the
command line, where the JSON records one), the seeds where recorded and the machine recorded in
the JSON. The README quotes no other number of these benchmarks.

    .venv/bin/python benchmarks/readme_tables.py --readme README.md          # rewrite the blocks
    .venv/bin/python benchmarks/readme_tables.py --readme README.md --check  # exit 1, with a diff, if stale

A marker line may be indented (inside a list item): the block is indented the same way.
Adding a block is one function: decorate it with ``@block("NAME", "result", ...)`` (the JSON
files ``benchmarks/results/<result>.json`` it reads), return the block's lines, and put the two
marker lines in the README.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_atomic  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMMAND = "python benchmarks/readme_tables.py --readme README.md"

#: How the README names the benchmarks' models (the keys are the JSON's ``model`` values).
MODEL_NAMES = {
    "mlp": "digits MLP 64-128-10",
    "cnn": "digits CNN (conv+BN+avgpool, 3 spiking layers)",
    "digits-cnn": "digits CNN",
    "resnet20": "ResNet20",
    "vgg16": "VGG16 (avg pooling)",
}


@dataclass(frozen=True)
class Block:
    """One generated block of the README: its marker name, the results it reads, its lines."""

    name: str
    sources: tuple[str, ...]
    lines: Callable[[dict[str, dict], dict[str, str]], list[str]]

    @property
    def begin(self) -> str:
        return f"<!-- {self.name}: {COMMAND} -->"

    @property
    def end(self) -> str:
        return f"<!-- end of {self.name} -->"


#: The blocks, in README order (registered by :func:`block`).
BLOCKS: dict[str, Block] = {}


def block(name: str, *sources: str):
    """Register ``fn(results, paths) -> lines`` as the README block ``name``; ``results`` maps each
    source name to its loaded JSON, ``paths`` to the path the README names for it."""

    def register(fn):
        BLOCKS[name] = Block(name, sources, fn)
        return fn

    return register


# --- formatting ---------------------------------------------------------------------------------


def num(x: float) -> str:
    """Two significant digits below 10, whole numbers above: 0.61, 4.3, 59, 315."""
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def gib(mib: float) -> str:
    return f"{num(mib / 1024)} GiB"


def msyn(n: int) -> str:
    return f"{n / 1e6:.1f} M"


def model_name(key: str) -> str:
    return MODEL_NAMES.get(key, key)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def find(rows: list[dict], model: str, standalone: bool, shared: bool) -> dict | None:
    """The first row of ``model`` on a standalone (or the numpy) target with (or without) shared weights."""
    return next(
        (
            r
            for r in rows
            if r["model"] == model
            and (r["target"] != "numpy") == standalone
            and bool(r["shared_weights"]) == shared
        ),
        None,
    )


def provenance(results: dict[str, dict], paths: dict[str, str], names: tuple[str, ...]) -> str:
    """Which files, written by which command (or script), with which seeds, on which machine."""
    parts = []
    for name in names:
        data = results[name]
        how = f"command `{data['command']}`" if data.get("command") else f"script `benchmarks/{name}.py`"
        missing = [what for what in ("command", "seeds") if data.get(what) is None]
        if data.get("seeds") is not None:
            how += f", seeds {data['seeds']}"
        if missing:
            how += f"; {' and '.join('command line' if m == 'command' else m for m in missing)} not recorded"
        parts.append(f"`{paths[name]}` ({how})")
    machines = []
    for name in names:
        data = results[name]
        for m in [data.get("machine"), *(r.get("machine") for r in data.get("rows", []))]:
            if m and m not in machines:
                machines.append(m)
    where = (
        "machine not recorded"
        if not machines
        else f"machine{'s' if len(machines) > 1 else ''}: {'; '.join(machines)}"
    )
    return f"From {' and '.join(parts)}; {where}."


# --- the blocks -----------------------------------------------------------------------------------


def throughput_rows(data: dict) -> list[str]:
    """Per model: the fastest batched numpy row against one image per ``run()``, then each
    standalone target."""
    lines = []
    models = list(dict.fromkeys(r["model"] for r in data["rows"]))
    for model in models:
        rows = [r for r in data["rows"] if r["model"] == model]
        base = next((r for r in rows if r["per_image"]), None)
        batched = sorted(
            (r for r in rows if not r["per_image"] and r["target"] == "numpy"), key=lambda r: r["copies"]
        )
        if not batched:
            continue
        best = max(batched, key=lambda r: r["images_per_s"])
        others = ", ".join(f"{r['images_per_s']:,.0f} with {r['copies']}" for r in batched if r is not best)
        versus = (
            f" vs {num(base['images_per_s'])} images/s one image per `run()`: **x{best['speedup']:.0f}**"
            if base is not None
            else ""
        )
        lines.append(
            f"| {model_name(model)}, {best['images']:,} images, T = {best['T']} | "
            f"**{best['images_per_s']:,.0f} images/s** (numpy target, {best['copies']} copies x pipelined "
            f"windows{'; ' + others if others else ''}){versus}; build {num(best['build_s'])} s, "
            f"peak RSS {best['peak_rss_mib']:.0f} MiB |"
        )
        for r in (r for r in rows if not r["per_image"] and r["target"] != "numpy"):
            speedup = f" (x{r['speedup']:.0f})" if "speedup" in r else ""
            lines.append(
                f"| the same, {r['target']} ({r['copies']} copies; one compiled program, all images in one run) | "
                f"**{r['images_per_s']:,.0f} images/s**{speedup}, after {num(r['compile_s'])} s of code "
                "generation, compilation and setup |"
            )
    return lines


def cifar_performance_rows(data: dict) -> list[str]:
    """Per model (fewest synapses first): the runtime run with one weight per synapse and the
    standalone run with generated connectivity (shared kernels)."""
    lines = []
    rows = [r for r in data["rows"] if "error" not in r]
    synapses = {r["model"]: r["synapses"] for r in reversed(rows)}
    for model in sorted(synapses, key=synapses.get):
        runtime = find(rows, model, standalone=False, shared=False)
        compiled = find(rows, model, standalone=True, shared=True)
        first = True
        for r in (runtime, compiled):
            if r is None:
                continue
            backend = (
                "runtime (numpy)" if r["target"] == "numpy" else f"{r['target']} (generated connectivity)"
            )
            what = (
                f"{model_name(model)}, CIFAR shape, T = {r['T']}, {backend}"
                if first
                else f"the same, {backend}"
            )
            head = f"{msyn(r['synapses'])} synapses, " if first else ""
            first = False
            if "refused" in r:
                lines.append(f"| {what} | {head}refused up front by the memory estimate (see Scaling up) |")
                continue
            exact = (
                f"spike-exact against the torch twin ({r['images']} images)"
                if r["spike_exact"]
                else "**not** spike-exact"
            )
            if r["target"] == "numpy":
                lines.append(
                    f"| {what} | {head}build {num(r['build_s'])} s, {num(r['s_per_image'])} s/image, "
                    f"peak RSS {gib(r['peak_rss_mib'])}, {exact} |"
                )
                continue
            ratio = (
                f" (x{runtime['s_per_image'] / r['s_per_image']:.0f} against the runtime row)"
                if runtime is not None and "s_per_image" in runtime
                else ""
            )
            lines.append(
                f"| {what} | {head}**{num(r['s_per_image'])} s/image**{ratio}, program peak "
                f"{gib(r['program_peak_rss_mib'])} ({r['bytes_per_synapse']:.1f} bytes/synapse), after "
                f"{num(r['compile_s'])} s of compilation, {exact} |"
            )
    return lines


@block("performance table", "brian_throughput", "cifar_brian")
def performance_table(results: dict[str, dict], paths: dict[str, str]) -> list[str]:
    return [
        provenance(results, paths, ("brian_throughput", "cifar_brian")),
        "",
        "| what | result |",
        "|---|---|",
        *throughput_rows(results["brian_throughput"]),
        *cifar_performance_rows(results["cifar_brian"]),
    ]


#: Order of the Scaling-up rows within a model: (target is standalone, shared weights).
BACKEND_ORDER = {(True, True): 0, (True, False): 1, (False, False): 2, (False, True): 3}


def backend_label(r: dict) -> str:
    if r["target"] == "numpy":
        return "runtime (numpy), " + (
            "`shared_weights=True`" if r["shared_weights"] else "one weight per synapse"
        )
    if r["shared_weights"]:
        return f"{r['target']}, generated connectivity"
    return f"{r['target']}, index arrays, one weight per synapse (`shared_weights=False`)"


@block("scaling table", "cifar_brian")
def scaling_table(results: dict[str, dict], paths: dict[str, str]) -> list[str]:
    data = results["cifar_brian"]
    T = sorted({r["T"] for r in data["rows"] if "T" in r})
    copies = sorted({r["copies"] for r in data["rows"] if "copies" in r})
    lines = [
        provenance(results, paths, ("cifar_brian",)),
        f"T = {', '.join(map(str, T))}, {', '.join(map(str, copies))} network "
        f"cop{'y' if copies == [1] else 'ies'}, random weights:",
        "",
        "| network | backend | synapses | compile (s) | setup (s) | s / image | program peak RSS | bytes / synapse | spike-exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    failed = [r for r in data["rows"] if "error" in r]
    refused = [r for r in data["rows"] if "refused" in r]
    rows = [r for r in data["rows"] if "error" not in r and "refused" not in r]
    rows.sort(
        key=lambda r: (-r["synapses"], BACKEND_ORDER[(r["target"] != "numpy", bool(r["shared_weights"]))])
    )
    for r in rows:
        standalone = r["target"] != "numpy"
        bold = (lambda s: f"**{s}**") if standalone and r["shared_weights"] else (lambda s: s)
        memory = (
            f"{gib(r['program_peak_rss_mib'])} (+{gib(r['peak_rss_mib'])} Python)"
            if standalone
            else f"{gib(r['peak_rss_mib'])} (Python)"
        )
        exact = "yes" if r["spike_exact"] else "**no**"
        per_synapse = f"{r['bytes_per_synapse']:.1f}"
        lines.append(
            f"| {model_name(r['model'])} | {backend_label(r)} | {msyn(r['synapses'])} | "
            f"{num(r['compile_s']) if standalone else '-'} | {num(r['setup_s']) if standalone else '-'} | "
            f"{bold(num(r['s_per_image']))} | {memory} | {bold(per_synapse)} | "
            f"{exact}, {r['images']} images (outputs within {r['max_output_diff']:.0e}) |"
        )
    lines.append("")
    for model in dict.fromkeys(r["model"] for r in rows):
        shared = find(rows, model, standalone=True, shared=True)
        arrays = find(rows, model, standalone=True, shared=False)
        if shared is None or arrays is None or shared["target"] != arrays["target"]:
            continue
        lines.append(
            f"In the same compiled program ({shared['target']}), generated connectivity with shared kernels "
            f"takes {model_name(model)} from {arrays['bytes_per_synapse']:.1f} to {shared['bytes_per_synapse']:.1f} "
            f"bytes per synapse and from {num(arrays['s_per_image'])} to {num(shared['s_per_image'])} s per image "
            f"(x{arrays['s_per_image'] / shared['s_per_image']:.1f} faster), and the Python process's peak "
            f"from {gib(arrays['peak_rss_mib'])} to {gib(shared['peak_rss_mib'])}: it no longer holds index arrays."
        )
    for r in refused:
        lines.append(
            f"{model_name(r['model'])}, {backend_label(r)}: refused up front by the memory estimate "
            f'("{r["refused"]}").'
        )
    for r in failed:
        lines.append(f"`{r.get('key', '?')}` failed: {r['error']}")
    while lines[-1] == "":
        lines.pop()
    return lines


@block("compiled program", "compiled_program")
def compiled_program(results: dict[str, dict], paths: dict[str, str]) -> list[str]:
    data = results["compiled_program"]
    parts = []
    for r in data["rows"]:
        exact = "spike-exact" if r["spike_exact"] else "**not** spike-exact"
        parts.append(
            f"{model_name(r['model'])}, {r['images_per_batch']} images per batch ({r['copies']} "
            f"cop{'y' if r['copies'] == 1 else 'ies'}): {num(r['simulate_call_s'])} s per `simulate()` call vs "
            f"{num(r['compile_program_s'])} s to compile once and then {num(mean(r['rerun_wall_s']))} s per batch "
            f"({num(mean(r['rerun_setup_s']))} s of it the program's setup, creating the synapses again): "
            f"x{r['speedup_per_batch']:.0f} per batch, {exact} on {r['batches']} batches"
        )
    return [f"Measured: {'; '.join(parts)}.", provenance(results, paths, ("compiled_program",))]


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """``median (min - max)``."""
    v = sorted(values)
    med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    return f"{fmt.format(med)} ({fmt.format(v[0])} - {fmt.format(v[-1])})"


@block("dask scaling", "distributed")
def dask_scaling(results: dict[str, dict], paths: dict[str, str]) -> list[str]:
    d = results["distributed"]
    rounds = d["rounds"]
    rows = {0 if r["mode"].startswith("single") else r["workers"]: r for r in d["runtime"]}
    loads = [r["load_1min_start"] for r in rounds]
    lines = [
        provenance(results, paths, ("distributed",)),
        f"{d['images']} digits-CNN inputs (Brian2, numpy target), {len(rounds)} interleaved rounds; "
        f"median (min - max) over the rounds; 1-minute load at the rounds' start "
        f"{min(loads):.2f} - {max(loads):.2f} on {d['machine'].split(',')[1].strip() if ',' in d['machine'] else 'the machine'}:",
        "",
        "| run | images/s | spike for spike equal to the single process |",
        "|---|---:|---|",
    ]
    names = {0: "one process, no Dask", 1: "Dask, 1 worker", 2: "Dask, 2 workers"}
    for n in (0, 1, 2):
        r = rows[n]
        lines.append(f"| {names[n]} | {spread(r['images_per_s_all'])} | {'yes' if r['spike_exact'] else 'NO'} |")
    eff = [100 * r["efficiency"] for r in rounds]
    lines += [
        "",
        f"Scaling efficiency from 1 to 2 workers (images/s with 2 / twice images/s with 1, per round): "
        f"**{spread(eff, '{:.2f} %')}** (the goal: >= 90 %); the same measure for pure Python on this machine in the same run: "
        f"{100 * d['machine_scaling']['cpu']['efficiency']:.0f} %, Brian2 without Dask: "
        f"{100 * d['machine_scaling']['brian2']['efficiency']:.0f} %.",
    ]
    return lines


@block("twin table", "twin_vs_ann")
def twin_table(results: dict[str, dict], paths: dict[str, str]) -> list[str]:
    d = results["twin_vs_ann"]
    rows = d["rows"]
    r0 = rows[0]
    lines = [
        provenance(results, paths, ("twin_vs_ann",)),
        f"Batch {r0['batch']}, float32, T = {r0['T']}, {r0['threads']} torch threads; twin time / plain eager ANN "
        f"time, each path in its own fresh process, divided by the ANN timed in the same process; median "
        f"(min - max) over {r0['repetitions']} interleaved repetitions. The eager ANN is faster in a process "
        "where `torch.compile` has run (glibc stops re-faulting its memory each call; the results file has the "
        "page faults), so the last column divides the default twin by the ANN of the fresh eager processes:",
        "",
        "| model | default (`compiled=\"auto\"`) | eager (`compiled=False`) | `compiled=True` | layers the default compiles | default <= x1.5 | default / ANN of a fresh process |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    def cell(q: dict, v: str) -> str:
        return f"x{q[v]['median']:.2f} ({q[v]['min']:.2f} - {q[v]['max']:.2f})"

    for r in rows:
        q = r["ratio_spread"]
        auto = r["auto_layers"]
        ok = q["twin_f32_default"]["median"] <= 1.5
        fresh = r["median_s"]["twin_f32_default"] / statistics.median(r["ann_f32_s_by_process"]["eager"])
        lines.append(
            f"| {model_name(r['model'])} | {cell(q, 'twin_f32_default')} | {cell(q, 'twin_f32')} | "
            f"{cell(q, 'twin_f32_compiled')} | {sum(a['compiled'] for a in auto)} of {len(auto)} | "
            f"{'yes' if ok else '**no**'} | x{fresh:.2f} |"
        )
    return lines


# --- the README ------------------------------------------------------------------------------------


def load_results(results_dir: str | os.PathLike, readme: str | os.PathLike) -> tuple[dict, dict]:
    """The JSON of every source any block reads, and the path the README names for each
    (relative to the README's folder)."""
    results, paths = {}, {}
    for b in BLOCKS.values():
        for name in b.sources:
            path = Path(results_dir) / f"{name}.json"
            try:
                results[name] = json.loads(path.read_text())
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"the README block {b.name!r} reads {path}, which does not exist: run "
                    f"`python benchmarks/{name}.py` or pass --results with the folder holding it"
                ) from None
            paths[name] = Path(os.path.relpath(path.resolve(), Path(readme).resolve().parent)).as_posix()
    return results, paths


def render(b: Block, results: dict, paths: dict, indent: str = "") -> str:
    """The block ``b`` with its markers, each non-empty line prefixed by ``indent``."""
    lines = [b.begin, *b.lines(results, paths), b.end]
    return "\n".join(indent + line if line else "" for line in lines)


def rewrite(text: str, results: dict, paths: dict) -> str:
    """``text`` (a README) with every block replaced by what :data:`BLOCKS` generate."""
    for b in BLOCKS.values():
        start = text.find(b.begin)
        stop = text.find(b.end, start)
        if start < 0 or stop < 0:
            raise ValueError(
                f"the README has no {b.name!r} block: add the lines {b.begin!r} and {b.end!r} where it goes"
            )
        line_start = text.rfind("\n", 0, start) + 1
        indent = text[line_start:start]
        if indent.strip():
            raise ValueError(f"the marker {b.begin!r} must start its line (found {indent!r} before it)")
        text = text[:line_start] + render(b, results, paths, indent) + text[stop + len(b.end) :]
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/readme_tables.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="the README whose blocks are written")
    p.add_argument(
        "--results", default=str(HERE / "results"), help="the folder of the benchmarks' JSON files"
    )
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff if a block is stale"
    )
    args = p.parse_args(argv)
    readme = Path(args.readme)
    text = readme.read_text()
    try:
        new = rewrite(text, *load_results(args.results, readme))
    except (ValueError, FileNotFoundError) as err:
        print(f"{p.prog}: {err}", file=sys.stderr)
        return 2
    if args.check:
        if new == text:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new.splitlines(keepends=True),
                str(readme),
                f"{readme} (generated)",
            )
        )
        print(f"\n{readme} is stale: run `{COMMAND}`")
        return 1
    if new != text:
        write_atomic(str(readme.resolve()), new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
