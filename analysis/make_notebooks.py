"""Write the analysis notebooks (outputs stripped) with nbformat: edit this file, not the .ipynb.

Run from anywhere: ``.venv/bin/python analysis/make_notebooks.py``. The notebooks run with the
``analysis/`` folder as working directory (``tests/test_notebooks.py`` executes them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

ERROR_BOUNDS = [
    (
        "md",
        """# Conversion error of TTFS and SC-TTFS (eqs. 18-19)

For activations `a` and a code, `z = code.quantize(a)` is what the next layer decodes. The error
`sum |ReLU(a) - z|` splits into `e_c,min` (0 < a < smallest value: silent), `e_q` (in range) and
`e_c,max` (above the largest value: clipped), `scttfs_brian.analysis.error_decomposition`.

Two comparisons: **Table 1** — the CIFAR10 kernels, TTFS with the same encoding kernel (the
paper's assumption in section 3.3); **range-matched** — every alpha scaled so that the code's
largest value is the 99.9th percentile of the positive activations.""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
import numpy as np

from scttfs_brian import PRESETS, SCTTFSCode, TTFSCode
from scttfs_brian.analysis import error_decomposition, error_sweep, scale_code, synthetic_activations

ENC, CAL = PRESETS["cifar10"]
TS = range(1, 11)
T_PAPER = 6


def range_matched(code, a, percentile=99.9):
    return scale_code(code, float(np.percentile(a[a > 0], percentile)) / code.max_value)


def makers(a):
    return {
        "TTFS (Table 1 enc.)": lambda T: TTFSCode(T, ENC),
        "SC-TTFS (Table 1)": lambda T: SCTTFSCode(T, ENC, CAL),
        "TTFS (range-matched)": lambda T: range_matched(TTFSCode(T, ENC), a),
        "SC-TTFS (range-matched)": lambda T: range_matched(SCTTFSCode(T, ENC, CAL), a),
    }""",
    ),
    (
        "md",
        "## Synthetic activations (20 000 samples, scale 1): error terms per neuron against T\n\n"
        "(`write_tables.py` uses 100 000 samples for the tables in `README.md`.)",
    ),
    (
        "code",
        """samples = {d: synthetic_activations(d, 20_000, seed=0) for d in ("half-normal", "exponential", "uniform")}
sweeps = {d: error_sweep(a, TS, makers(a)) for d, a in samples.items()}

terms = ("e_c_min", "e_q", "e_c_max", "total")
fig, axs = plt.subplots(len(samples), len(terms), figsize=(16, 10), sharex=True)
for row, (dist, sweep) in zip(axs, sweeps.items(), strict=True):
    for ax, term in zip(row, terms, strict=True):
        for k, name in enumerate(sweep.terms):
            style = "-" if name.startswith("SC") else "--"
            n = sweep.terms[name][0].n
            y = sweep.series(name, term) / n
            ax.plot(sweep.Ts, y, style, color=f"C{k // 2}", marker="o", ms=3, label=name)
        ax.set_title(f"{dist}: {term} per neuron")
        if term.startswith("e_c"):  # clipping terms span decades and reach 0
            ax.set_yscale("symlog", linthresh=1e-4)
        else:
            ax.set_ylim(bottom=0)
for ax in axs[-1]:
    ax.set_xlabel("T")
axs[0, 0].legend(fontsize=7)
fig.tight_layout()""",
    ),
    (
        "code",
        """for dist, sweep in sweeps.items():
    print(f"--- {dist}, T = {T_PAPER}")
    table = sweep.to_table()
    print(type(table)(table.columns, [r for r in table.rows if r[0] == T_PAPER]).to_markdown(".4f"))""",
    ),
    (
        "md",
        """## Real layer activations: a briefly trained digits CNN

`digits_activations.py` trains `scttfs_brian.models.DigitsCNN` for 8 epochs (about 10 s on one
core) and reads every ReLU's output on the 450 test digits with forward hooks.""",
    ),
    (
        "code",
        """from digits_activations import digits_activations

from scttfs_brian.analysis import Table

accuracy, acts = digits_activations()
print(f"test accuracy {100 * accuracy:.1f} %; layers:", {k: v.size for k, v in acts.items()})

rows = []
for layer, a in acts.items():
    for name, make in makers(a).items():
        e = error_decomposition(a, make(T_PAPER))
        rows.append((layer, name, e.e_c_min / e.n, e.e_q / e.n, e.e_c_max / e.n, e.total / e.n))

columns = ("layer", "code", "e_c_min", "e_q", "e_c_max", "total")
print(Table(columns, rows, f"T = {T_PAPER}").to_markdown(".4f"))""",
    ),
    (
        "code",
        """layers = list(acts)
names = list(makers(next(iter(acts.values()))))
fig, ax = plt.subplots(figsize=(10, 4))
width = 0.2
for k, name in enumerate(names):
    totals = [r[5] for r in rows if r[1] == name]
    ax.bar(np.arange(len(layers)) + (k - 1.5) * width, totals, width, label=name)
ax.set_xticks(range(len(layers)), layers)
ax.set_ylabel("mean |ReLU(a) - z| per neuron")
ax.set_title(f"Conversion error per layer at T = {T_PAPER} (digits CNN)")
ax.legend(fontsize=8)""",
    ),
]

CODE_CAPACITY = [
    (
        "md",
        """# Code capacity: N(T) = T(T+3)/2 against the words real kernels reach

The paper counts every admissible pair `(t_enc, t_cal >= t_enc)` plus "no calibration":
`N(T) = sum_{i=1..T} (i+1)`. With decreasing kernels some pairs are unreachable: after an encoding
spike at `t >= 1` the residual is below `theta_e(t-1) - theta_e(t)`.""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt

from scttfs_brian import PRESETS, SCTTFSCode
from scttfs_brian.analysis import capacity_table, code_capacity

table = capacity_table(range(1, 11))
print(table.to_markdown())""",
    ),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(6, 4))
Ts = table.column("T")
ax.plot(Ts, table.column("N(T) paper"), "k-o", label="N(T) = T(T+3)/2 (paper)")
ax.plot(Ts, table.column("reachable cifar10"), "C3-s", label="reachable, CIFAR10 kernels")
ax.plot(Ts, table.column("reachable cifar100"), "C0--^", label="reachable, CIFAR100 kernels")
ax.plot(Ts, table.column("TTFS T"), "C2-", label="TTFS: T")
ax.set_xlabel("window T (steps)")
ax.set_ylabel("non-zero code words")
ax.legend()""",
    ),
    ("md", "Which words are unreachable with the CIFAR10 kernels, and why (T = 6):"),
    (
        "code",
        """code = SCTTFSCode(6, *PRESETS["cifar10"])
admissible = {(w.t_enc, w.t_cal) for w in code.codebook(include_unreachable=True)}
reachable = {(w.t_enc, w.t_cal) for w in code.codebook()}
for t, s in sorted(admissible - reachable):
    gap = code.table_e[t - 1] - code.table_e[t]
    print(f"(t_enc={t}, t_cal={s}): theta_c({s}) = {code.table_c[s]:.4f} >= gap {gap:.4f}")
print(code_capacity(code))""",
    ),
    (
        "code",
        """# the code book itself: every reachable word and its value
for w in code.codebook():
    print(f"t_enc={w.t_enc:2d} t_cal={w.t_cal:2d} value={w.value:.5f}")""",
    ),
]

ENERGY = [
    (
        "md",
        """# Energy (eq. 25): E = N E_i + L E_l

`N` spikes per image, `L` latency in steps, TrueNorth `(0.4, 0.6)`, SpiNNaker `(0.64, 0.36)`.
The paper "normalized" the estimates; which normalization gives its "about 80 %" saving of
SC-TTFS over TTFS(2020) on VGG16?""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
import numpy as np

from scttfs_brian.analysis import PLATFORMS, load_method_results, method_energy_table

results = load_method_results("../figures/data/paper_tables.csv")
OURS, TTFS = "VGG16 SC-TTFS", "VGG16 TTFS(2020) [21]"
for table in (2, 3):
    rows = [r for r in results if r.table == table]
    vgg = [r for r in rows if r.network == "VGG16"]
    pair = [r for r in vgg if r.method in ("SC-TTFS", "TTFS(2020)")]
    print(f"--- Table {table} ({rows[0].dataset})")
    for label, subset, norm in (
        ("max over all rows with spikes", rows, "max"),
        ("sum over all rows with spikes", rows, "sum"),
        ("max over the two methods only", pair, "max"),
        ("none (raw eq. 25)", rows, "none"),
    ):
        et = method_energy_table(subset, norm)
        gains = ", ".join(f"{p} {100 * et.improvement(OURS, TTFS, p):6.1f} %" for p in PLATFORMS)
        print(f"{label:32s} {gains}")""",
    ),
    (
        "code",
        """fig, axs = plt.subplots(2, 2, figsize=(13, 8), sharex="col")
for row, table in zip(axs, (2, 3), strict=True):
    et = method_energy_table([r for r in results if r.table == table])
    for ax, platform in zip(row, PLATFORMS, strict=True):
        colors = ["C3" if "SC-TTFS" in n else "C0" if "TTFS" in n else "0.6" for n in et.names]
        ax.barh(np.arange(len(et.names)), et.energies[platform], color=colors)
        ax.set_yticks(np.arange(len(et.names)), et.names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"Table {table}, {platform}: saving {100 * et.improvement(OURS, TTFS, platform):.1f} %")
fig.tight_layout()""",
    ),
]

NOTEBOOKS = {
    "error_bounds.ipynb": ERROR_BOUNDS,
    "code_capacity.ipynb": CODE_CAPACITY,
    "energy.ipynb": ENERGY,
}


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = build(cells)
        nbformat.validate(nb)
        path = HERE / name
        fd, tmp = tempfile.mkstemp(dir=HERE, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        print(path)


if __name__ == "__main__":
    main()
