"""Figs. 3 and 4 of Feng et al. 2024: normalized energy estimates on TrueNorth and SpiNNaker.

The paper estimates each method's energy with eq. 25, ``E = N * E_i + L * E_l`` (``N`` spikes
per image, ``L`` latency in steps; TrueNorth ``(E_i, E_l) = (0.4, 0.6)``, SpiNNaker
``(0.64, 0.36)``), "normalized", and plots it for CIFAR10 (Fig. 3, Table 2) and CIFAR100
(Fig. 4, Table 3). Here the numbers come from the paper's tables
(``figures/data/paper_tables.csv``) through :func:`scttfs_brian.analysis.method_energy_table`.

Normalization: the paper says only that the estimates were "normalized". Two readings reproduce
its claim that SC-TTFS is about 80 % more energy-efficient than TTFS(2020) on VGG16, and the figure
draws both, one row each, saying so on the figure: (top) ``N`` and ``L`` each divided by their
maximum over the methods plotted; (bottom) ``N`` in the unit the tables print it (10^6 spikes) and
``L`` in steps. Neither is stated by the paper; in both the latency dominates, and the latency
ratio alone (``1 - 108/680`` on CIFAR10) gives the same "about 80 %". ``analysis/README.md``
compares further normalizations.

What differs: methods without a spike count in the tables (most ResNet20 rows, and any row
whose latency is printed only as a lower bound) cannot enter eq. 25 and are left out; the
ResNet20 rows that have one are included. The CIFAR100 ResNet20 SC-TTFS count is printed as
``0.498`` without ``x10^6`` and is read as ``0.498 x 10^6``.

Run: ``python figures/fig3_fig4_energy.py`` (writes ``figures/out/fig3_energy_cifar10.{png,pdf}``
and ``figures/out/fig4_energy_cifar100.{png,pdf}``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from scttfs_brian.analysis import PLATFORMS, load_method_results, method_energy_table
from scttfs_brian.brian.plotting import save_figure

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PAPER_TABLES = HERE / "data" / "paper_tables.csv"

OURS = "VGG16 SC-TTFS"
TTFS = "VGG16 TTFS(2020) [21]"
TITLES = {
    "truenorth": "TrueNorth $(E_i, E_l) = (0.4, 0.6)$",
    "spinnaker": "SpiNNaker $(E_i, E_l) = (0.64, 0.36)$",
}


#: The two readings of the paper's "normalized" that reproduce its "about 80 %", with the
#: axis label each gets.
READINGS = {
    "max": "eq. 25 with N and L each divided by their maximum over the methods",
    "millions": "eq. 25 with N in 10^6 spikes (the tables' unit) and L in steps",
}


def energy_figure(results, table: int, fig_number: int) -> Figure:
    rows = [r for r in results if r.table == table]
    tables = {norm: method_energy_table(rows, norm) for norm in READINGS}
    names = tables["max"].names
    left_out = [f"{r.network} {r.label}" for r in rows if f"{r.network} {r.label}" not in names]
    dataset = rows[0].dataset
    ours, ttfs = (
        next(r for r in rows if r.network == "VGG16" and r.method == m) for m in ("SC-TTFS", "TTFS(2020)")
    )
    fig = Figure(figsize=(12, 2 * (0.42 * len(names) + 1.6)), layout="constrained")
    axs = fig.subplots(len(READINGS), len(PLATFORMS), sharey=True)
    colors = ["C3" if "SC-TTFS" in n else "C0" if "TTFS" in n else "0.6" for n in names]
    for row, (norm, et) in zip(axs, tables.items(), strict=True):
        for ax, platform in zip(row, PLATFORMS, strict=True):
            e = et.energies[platform]
            y = range(len(names))
            ax.barh(y, e, color=colors)
            for k, val in enumerate(e):
                ax.text(val, k, f" {val:.3g}", va="center", fontsize=8)
            ax.set_yticks(list(y), list(names))
            ax.set_xlim(0, 1.2 * e.max())
            ax.set_xlabel(READINGS[norm], fontsize=8)
            gain = et.improvement(OURS, TTFS, platform)
            ax.set_title(
                f"{TITLES[platform]}, reading '{norm}'\nSC-TTFS vs TTFS(2020), VGG16: {100 * gain:.1f} % less energy",
                fontsize=9,
            )
    axs[0, 0].invert_yaxis()  # once: the axes share y
    fig.suptitle(
        f"cf. Fig. {fig_number}: energy estimates on {dataset} from the paper's Table {table}\n"
        "The paper does not state its normalization: both rows are this project's readings "
        f"(latency alone: 1 - {ours.latency:g}/{ttfs.latency:g} = {100 * (1 - ours.latency / ttfs.latency):.1f} %)",
        fontsize=10,
    )
    if left_out:
        note = "left out (no spike count in the paper): " + ", ".join(left_out)
        fig.text(0.01, -0.01, note, fontsize=7, wrap=True, va="top")
    return fig


def main(outdir: str | Path = OUT, tables: str | Path = PAPER_TABLES) -> list[Path]:
    results = load_method_results(tables)
    paths = []
    for table, fig_number, name in ((2, 3, "fig3_energy_cifar10"), (3, 4, "fig4_energy_cifar100")):
        fig = energy_figure(results, table, fig_number)
        paths += save_figure(fig, outdir, name)
    return paths


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else OUT):
        print(path)
