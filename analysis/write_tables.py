"""Write the analysis tables (markdown and CSV) into ``analysis/results/`` and the numbers into
``analysis/README.md`` (between its ``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers).

Tables (every number computed here, from :mod:`scttfs_brian.analysis`):

* ``capacity``: code capacity for T = 1..10, the paper's N(T) = T(T+3)/2, the words reachable
  with the Table 1 kernels and their distinct values, TTFS's T;
* ``energy_table2`` / ``energy_table3``: eq. 25 normalized, per method of Tables 2 and 3;
  ``energy_improvement``: SC-TTFS vs TTFS(2020) on VGG16 under several normalizations;
* ``errors_synthetic``: error terms (eqs. 18-19) of TTFS and SC-TTFS at T = 6 on half-normal,
  exponential and uniform activations; ``errors_sweep_synthetic``: the same for T = 1..10;
* ``errors_digits``: the same per layer of a briefly trained digits CNN (``--no-digits`` skips it;
  it trains for ~10 s).

Files are written atomically (temporary file + ``os.replace``). Run from the repository root:
``.venv/bin/python analysis/write_tables.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from scttfs_brian import PRESETS, SCTTFSCode, TTFSCode
from scttfs_brian.analysis import (
    PLATFORMS,
    Table,
    capacity_table,
    error_decomposition,
    error_sweep,
    load_method_results,
    method_energy_table,
    scale_code,
    synthetic_activations,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
PAPER_TABLES = HERE.parent / "figures" / "data" / "paper_tables.csv"

#: The window length of the comparisons. The paper does not state T; 108 steps of VGG16 on
#: CIFAR10 (Table 2) are 18 windows of 6 steps, and T = 6 is the value the project uses.
T_PAPER = 6
DISTRIBUTIONS = ("half-normal", "exponential", "uniform")
N_SYNTHETIC = 100_000
#: Range matching: the code's largest value is set to this percentile of the positive activations.
RANGE_PERCENTILE = 99.9
OURS, TTFS_2020 = "VGG16 SC-TTFS", "VGG16 TTFS(2020) [21]"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_table(table: Table, name: str, outdir: Path, floatfmt: str = ".4g") -> str:
    md = table.to_markdown(floatfmt)
    write_atomic(outdir / f"{name}.md", md)
    write_atomic(outdir / f"{name}.csv", table.to_csv())
    return md


# --- codes compared ---------------------------------------------------------------------------
def paper_codes(T: int) -> dict[str, SCTTFSCode | TTFSCode]:
    """TTFS and SC-TTFS with the CIFAR10 kernels of Table 1 (TTFS uses the encoding kernel: the
    paper's comparison assumes the same mapping function, section 3.3)."""
    enc, cal = PRESETS["cifar10"]
    return {"TTFS (Table 1 enc.)": TTFSCode(T, enc), "SC-TTFS (Table 1)": SCTTFSCode(T, enc, cal)}


def range_matched(code, a: np.ndarray):
    """``code`` scaled so that its largest value is the ``RANGE_PERCENTILE`` of ``a > 0``."""
    top = float(np.percentile(a[a > 0], RANGE_PERCENTILE))
    return scale_code(code, top / code.max_value)


def compared_codes(T: int, a: np.ndarray) -> dict:
    codes = paper_codes(T)
    enc, cal = PRESETS["cifar10"]
    codes["TTFS (range-matched)"] = range_matched(TTFSCode(T, enc), a)
    codes["SC-TTFS (range-matched)"] = range_matched(SCTTFSCode(T, enc, cal), a)
    return codes


ERROR_COLUMNS = ("data", "code", "e_c_min", "e_q", "e_c_max", "total", "L %", "U %")


def error_rows(label: str, a: np.ndarray, T: int) -> list[tuple]:
    rows = []
    for name, code in compared_codes(T, a).items():
        e = error_decomposition(a, code)
        n = e.n
        rows.append(
            (
                label,
                name,
                e.e_c_min / n,
                e.e_q / n,
                e.e_c_max / n,
                e.total / n,
                100 * e.n_below / n,
                100 * e.n_above / n,
            )
        )
    return rows


# --- the tables -------------------------------------------------------------------------------
def capacity() -> Table:
    return capacity_table(range(1, 11))


def energy_tables() -> tuple[dict[int, Table], Table]:
    results = load_method_results(PAPER_TABLES)
    per_table, rows = {}, []
    for tab in (2, 3):
        sub = [r for r in results if r.table == tab]
        dataset = sub[0].dataset
        et = method_energy_table(sub)
        per_table[tab] = et.to_table(
            f"Table {tab} ({dataset}): eq. 25, N and L divided by their maxima over the rows with a spike count"
        )
        vgg = [r for r in sub if r.network == "VGG16"]
        pair = [r for r in vgg if r.method in ("SC-TTFS", "TTFS(2020)")]
        variants = (
            ("max over all rows with spikes (chosen)", method_energy_table(sub, "max")),
            ("max over the VGG16 rows", method_energy_table(vgg, "max")),
            ("sum over all rows with spikes", method_energy_table(sub, "sum")),
            ("max over SC-TTFS and TTFS(2020) only", method_energy_table(pair, "max")),
            ("none (raw eq. 25)", method_energy_table(sub, "none")),
        )
        for label, et in variants:
            rows.append(
                (
                    f"Table {tab} ({dataset})",
                    label,
                    *(100 * et.improvement(OURS, TTFS_2020, p) for p in PLATFORMS),
                )
            )
    cols = ("table", "normalization of N and L", *(f"saving {p} %" for p in PLATFORMS))
    improvement = Table(cols, tuple(rows), "Energy saved by SC-TTFS vs TTFS(2020), VGG16 (paper: about 80 %)")
    return per_table, improvement


def errors_synthetic(T: int = T_PAPER) -> Table:
    rows = []
    for dist in DISTRIBUTIONS:
        rows += error_rows(dist, synthetic_activations(dist, N_SYNTHETIC, seed=0), T)
    return Table(
        ERROR_COLUMNS,
        tuple(rows),
        f"Error terms per neuron at T = {T}, {N_SYNTHETIC} synthetic activations (scale 1, seed 0)",
    )


def errors_sweep_synthetic() -> Table:
    rows = []
    enc, cal = PRESETS["cifar10"]
    for dist in DISTRIBUTIONS:
        a = synthetic_activations(dist, N_SYNTHETIC, seed=0)
        makers = {
            "TTFS (Table 1 enc.)": lambda T: TTFSCode(T, enc),
            "SC-TTFS (Table 1)": lambda T: SCTTFSCode(T, enc, cal),
            "TTFS (range-matched)": lambda T, a=a: range_matched(TTFSCode(T, enc), a),
            "SC-TTFS (range-matched)": lambda T, a=a: range_matched(SCTTFSCode(T, enc, cal), a),
        }
        sweep = error_sweep(a, range(1, 11), makers).to_table()
        rows += [(dist, *r) for r in sweep.rows]
    return Table(("data", *sweep.columns), tuple(rows), "Error terms per neuron against T (synthetic)")


def errors_digits(T: int = T_PAPER) -> tuple[Table, float]:
    sys.path.insert(0, str(HERE))
    from digits_activations import digits_activations

    acc, acts = digits_activations()
    rows = []
    for layer, a in acts.items():
        rows += error_rows(layer, a, T)
    # the whole network: neuron-weighted mean over layers
    for name in compared_codes(T, next(iter(acts.values()))):
        sel = [r for r in rows if r[1] == name]
        sizes = np.array([acts[r[0]].size for r in sel], dtype=np.float64)
        cols = np.array([r[2:] for r in sel], dtype=np.float64)
        rows.append(("all layers", name, *(sizes @ cols / sizes.sum())))
    title = (
        f"Error terms per neuron at T = {T}, ReLU outputs of a DigitsCNN (8 epochs, test accuracy "
        f"{100 * acc:.1f} %) on the 450 test digits; range-matched per layer"
    )
    return Table(ERROR_COLUMNS, tuple(rows), title), acc


# --- README -----------------------------------------------------------------------------------
def fill_readme(sections: dict[str, str], path: Path = README) -> None:
    text = path.read_text(encoding="utf-8")
    for name, body in sections.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{path} has no '<!-- BEGIN {name} -->' ... '<!-- END {name} -->' section")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    write_atomic(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-digits", action="store_true", help="skip the digits CNN (training ~10 s)")
    parser.add_argument("--no-readme", action="store_true", help="do not update analysis/README.md")
    args = parser.parse_args(argv)
    out = args.out
    sections = {"capacity": write_table(capacity(), "capacity", out)}
    per_table, improvement = energy_tables()
    sections["energy"] = write_table(improvement, "energy_improvement", out, ".1f")
    energy_md = [write_table(t, f"energy_table{tab}", out) for tab, t in per_table.items()]
    sections["energy_tables"] = "\n".join(energy_md)
    sections["errors_synthetic"] = write_table(errors_synthetic(), "errors_synthetic", out, ".4f")
    write_table(errors_sweep_synthetic(), "errors_sweep_synthetic", out, ".4f")
    if not args.no_digits:
        table, _ = errors_digits()
        sections["errors_digits"] = write_table(table, "errors_digits", out, ".4f")
    if not args.no_readme:
        fill_readme(sections)
    for body in sections.values():
        print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
