# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Energy (eq. 25): E = N E_i + L E_l
#
# `N` spikes per image, `L` latency in steps, TrueNorth `(0.4, 0.6)`, SpiNNaker `(0.64, 0.36)`.
# The paper "normalized" the estimates without saying how. Which readings give its "about 80 %"
# saving of SC-TTFS over TTFS(2020) on VGG16? Two do: `N` and `L` each divided by their maximum
# over the methods (`"max"`), and `N` in the unit the tables print it, 10^6 spikes, with `L` in
# steps (`"millions"`). In both the latency dominates: the latency ratio alone is
# `1 - 108/680`. Neither is the paper's stated method; both are this project's readings.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import scttfs_brian
from scttfs_brian.analysis import PLATFORMS, load_method_results, method_energy_table

ROOT = Path(scttfs_brian.__file__).resolve().parents[1]  # the repository (editable install)
results = load_method_results(ROOT / "figures" / "data" / "paper_tables.csv")
OURS, TTFS = "VGG16 SC-TTFS", "VGG16 TTFS(2020) [21]"
for table in (2, 3):
    rows = [r for r in results if r.table == table]
    vgg = [r for r in rows if r.network == "VGG16"]
    pair = [r for r in vgg if r.method in ("SC-TTFS", "TTFS(2020)")]
    print(f"--- Table {table} ({rows[0].dataset})")
    for label, subset, norm in (
        ("max over all rows with spikes", rows, "max"),
        ("N in 10^6 spikes, L in steps", rows, "millions"),
        ("sum over all rows with spikes", rows, "sum"),
        ("max over the two methods only", pair, "max"),
        ("none (raw eq. 25)", rows, "none"),
    ):
        et = method_energy_table(subset, norm)
        gains = ", ".join(f"{p} {100 * et.improvement(OURS, TTFS, p):6.1f} %" for p in PLATFORMS)
        print(f"{label:32s} {gains}")
    ours, ttfs = (next(r for r in vgg if r.method == m) for m in ("SC-TTFS", "TTFS(2020)"))
    print(f"{'latency ratio 1 - L_SC / L_TTFS':32s} {100 * (1 - ours.latency / ttfs.latency):6.1f} %")

# %% [markdown]
# Both readings, Table 2 (CIFAR10) and Table 3 (CIFAR100), on each platform.

# %%
fig, axs = plt.subplots(4, 2, figsize=(13, 15))
for row, (table, norm) in zip(axs, [(t, n) for t in (2, 3) for n in ("max", "millions")], strict=True):
    et = method_energy_table([r for r in results if r.table == table], norm)
    for ax, platform in zip(row, PLATFORMS, strict=True):
        colors = ["C3" if "SC-TTFS" in n else "C0" if "TTFS" in n else "0.6" for n in et.names]
        ax.barh(np.arange(len(et.names)), et.energies[platform], color=colors)
        ax.set_yticks(np.arange(len(et.names)), et.names, fontsize=8)
        ax.invert_yaxis()
        gain = 100 * et.improvement(OURS, TTFS, platform)
        ax.set_title(f"Table {table}, {platform}, normalization '{norm}': saving {gain:.1f} %", fontsize=9)
fig.tight_layout()
