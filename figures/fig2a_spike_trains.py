"""Fig. 2(a) of Feng et al. 2024: TTFS and SC-TTFS spike trains for the same membrane potentials.

The paper's Fig. 2(a) sketches the difference between the two codes in one window of ``T`` steps:
a TTFS neuron sends one spike, whose time stands for its potential (eq. 7); an SC-TTFS neuron
sends an encoding spike and, when the residual after the subtractive reset (eq. 11) reaches the
calibration threshold, a calibration spike (eqs. 9-13), and the receiving neuron adds both
thresholds (eqs. 16-17). Here six potentials are encoded by both codes with the CIFAR10 kernels
of Table 1 (encoding alpha 2.0, beta -1.0, k 0.8; calibration 1.0, 0.8, 1.0), T = 6, TTFS using
the same encoding kernel (the paper's assumption in section 3.3). Each row is one neuron; the
value decoded and its error are written at the right.

The spike times are the stepwise rule of :mod:`scttfs_brian.coding` (``code.spike_times``), which
the Brian2 model reproduces spike for spike (``tests/test_neurons.py``); Fig. 2(b),
``figures/fig2_neuron_dynamics.py``, shows the Brian2 traces.

What differs from the paper: real kernels and computed spike times instead of a sketch; the
potentials are chosen to show each case (silent, encoding only, encoding + calibration, clipped).

Run: ``python figures/fig2a_spike_trains.py`` (writes ``figures/out/fig2a_spike_trains.{png,pdf}``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scttfs_brian import PRESETS, SCTTFSCode, TTFSCode
from scttfs_brian.brian.plotting import save_figure

OUT = Path(__file__).resolve().parent / "out"
#: The potentials drawn: below the range, inside it at several steps, and above both ranges.
POTENTIALS = (0.012, 0.05, 0.2, 0.45, 0.9, 1.4, 3.5)


def spike_train_axes(ax, code, v, title: str) -> None:
    """One row per potential: the encoding spike as a black bar, the calibration spike red."""
    t_enc, t_cal = code.spike_times(np.asarray(v, dtype=np.float64))
    z = code.quantize(np.asarray(v, dtype=np.float64))
    for row, (te, tc) in enumerate(zip(t_enc, t_cal, strict=True)):
        ax.axhline(row, color="0.85", linewidth=0.6, zorder=0)
        if te >= 0:
            ax.plot([te, te], [row - 0.32, row + 0.32], color="k", linewidth=2.4)
        if tc >= 0:
            ax.plot([tc + 0.12, tc + 0.12], [row - 0.32, row + 0.32], color="C3", linewidth=2.4)
        ax.text(
            code.T - 0.35,
            row,
            f"z = {z[row]:.3f}  |v - z| = {abs(v[row] - z[row]):.3f}",
            va="center",
            fontsize=7.5,
        )
    ax.set_xlim(-0.6, code.T + 2.6)
    ax.set_xticks(range(code.T))
    ax.set_xlabel(f"time step t in the window (T = {code.T})")
    ax.set_title(title, fontsize=10)
    for t in (-0.5, code.T - 0.5):
        ax.axvline(t, color="0.5", linewidth=0.8, linestyle=":")


def main(outdir: str | Path = OUT, T: int = 6) -> list[Path]:
    enc, cal = PRESETS["cifar10"]
    ttfs, sc = TTFSCode(T, enc), SCTTFSCode(T, enc, cal)
    codes = {
        "TTFS: one spike per neuron": ttfs,
        "SC-TTFS: encoding spike (black) + calibration spike (red)": sc,
    }
    v = np.asarray(POTENTIALS)
    fig = Figure(figsize=(13, 0.5 * len(v) + 1.8), layout="constrained")
    axs = fig.subplots(1, 2, sharey=True)
    for ax, (title, code) in zip(axs, codes.items(), strict=True):
        spike_train_axes(ax, code, v, title)
    axs[0].set_yticks(range(len(v)), [f"v = {x:g}" for x in v])
    axs[0].invert_yaxis()
    fig.suptitle(
        "cf. Fig. 2(a): the same potentials in TTFS and SC-TTFS "
        f"(Table 1 CIFAR10 kernels; largest value {ttfs.max_value:.3f} and {sc.max_value:.3f}, "
        f"smallest {sc.min_value:.4f} in both)"
    )
    return save_figure(fig, outdir, "fig2a_spike_trains")


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else OUT):
        print(path)
