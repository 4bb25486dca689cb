"""Fig. 1(b) of Feng et al. 2024: the TTFS response against ReLU, with the SC-TTFS response added.

The paper's Fig. 1(b) sketches the TTFS response (eq. 7, a ``clip(ceil(.))`` staircase: a
potential is rounded down to the threshold of its first spike step, silenced below the last
step's threshold and clipped at the first's) against the ANN's ReLU. Here the staircases are
computed by :meth:`scttfs_brian.coding.TTFSCode.quantize` with the CIFAR10 encoding kernel of
Table 1 (alpha 2.0, beta -1.0, k 0.8), and the SC-TTFS response of the same encoding kernel with
the Table 1 calibration kernel (1.0, 0.8, 1.0) is drawn on the same axes, for the window T = 6
and T = 3. What differs from the paper: real kernels instead of a sketch, and SC-TTFS added
(more, finer steps and a larger clipping value: smaller e_q and e_c,max, eqs. 18-19). The steps
near the smallest value are too fine to read on linear axes, so each panel has a log-log inset
from half the smallest value up to the clipping value (silence, value 0, is off its scale).

Run: ``python figures/fig1b_response.py`` (writes ``figures/out/fig1b_response.{png,pdf}``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scttfs_brian import PRESETS, SCTTFSCode, TTFSCode
from scttfs_brian.brian.plotting import plot_response, save_figure

OUT = Path(__file__).resolve().parent / "out"


def log_inset(ax, codes, colors):
    """A log-log inset of the responses from half the smallest value to 1.2x the largest."""
    lo = 0.5 * min(c.min_value for c in codes)
    hi = 1.2 * max(c.max_value for c in codes)
    v = np.geomspace(lo, hi, 6000)
    inset = ax.inset_axes([0.07, 0.5, 0.42, 0.42])
    inset.plot(v, v, "k--", linewidth=0.8)
    for code, color in zip(codes, colors, strict=True):
        z = code.quantize(v)
        inset.plot(v, np.where(z > 0, z, np.nan), color=color, linewidth=1.0)
        inset.axvline(code.min_value, color=color, linewidth=0.5, linestyle=":")
    inset.set_xscale("log")
    inset.set_yscale("log")
    inset.set_xlim(lo, hi)
    inset.set_ylim(lo, hi)
    inset.tick_params(labelsize=6)
    inset.set_title("log-log: the fine steps", fontsize=7)
    return inset


def main(outdir: str | Path = OUT, Ts: tuple[int, ...] = (6, 3)) -> list[Path]:
    enc, cal = PRESETS["cifar10"]
    fig = Figure(figsize=(5.0 * len(Ts), 4.2), layout="constrained")
    axs = fig.subplots(1, len(Ts), squeeze=False)[0]
    for ax, T in zip(axs, Ts, strict=True):
        sc = SCTTFSCode(T, enc, cal)
        ttfs = TTFSCode(T, enc)
        vmax = 1.2 * sc.max_value
        plot_response(ttfs, vmax, ax, relu=True, color="C0", linewidth=1.6, label=f"TTFS, {T} values")
        n_sc = len(sc.codebook()) - 1
        plot_response(sc, vmax, ax, relu=False, color="C3", linewidth=1.2, label=f"SC-TTFS, {n_sc} values")
        for value, color in ((ttfs.max_value, "C0"), (sc.max_value, "C3")):
            ax.axhline(value, color=color, linewidth=0.6, linestyle=":")
        ax.set_title(f"T = {T} (CIFAR10 kernels, Table 1)")
        ax.set_xlim(0, vmax)
        ax.set_ylim(0, vmax)
        ax.legend(loc="lower right", fontsize=7)
        log_inset(ax, (ttfs, sc), ("C0", "C3"))
    fig.suptitle("Response of the code vs ReLU (cf. Fig. 1(b))")
    return save_figure(fig, outdir, "fig1b_response")


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else OUT):
        print(path)
