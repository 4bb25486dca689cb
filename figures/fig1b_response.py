"""Fig. 1(b) of Feng et al. 2024: the TTFS response against ReLU, with the SC-TTFS response added.

The paper's Fig. 1(b) sketches the TTFS response (eq. 7, a ``clip(ceil(.))`` staircase: a
potential is rounded down to the threshold of its first spike step, silenced below the last
step's threshold and clipped at the first's) against the ANN's ReLU. Here the staircases are
computed by :meth:`scttfs_brian.coding.TTFSCode.quantize` with the CIFAR10 encoding kernel of
Table 1 (alpha 2.0, beta -1.0, k 0.8), and the SC-TTFS response of the same encoding kernel with
the Table 1 calibration kernel (1.0, 0.8, 1.0) is drawn on the same axes, for the window T = 6
and T = 3. What differs from the paper: real kernels instead of a sketch, and SC-TTFS added
(more, finer steps and a larger clipping value: smaller e_q and e_c,max, eqs. 18-19).

Run: ``python figures/fig1b_response.py`` (writes ``figures/out/fig1b_response.{png,pdf}``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from scttfs_brian import PRESETS, SCTTFSCode, TTFSCode
from scttfs_brian.brian.plotting import plot_response, save_figure

OUT = Path(__file__).resolve().parent / "out"


def main(outdir: str | Path = OUT, Ts: tuple[int, ...] = (6, 3)) -> list[Path]:
    enc, cal = PRESETS["cifar10"]
    fig = Figure(figsize=(5.0 * len(Ts), 4.2), layout="constrained")
    axs = fig.subplots(1, len(Ts), squeeze=False)[0]
    for ax, T in zip(axs, Ts, strict=True):
        sc = SCTTFSCode(T, enc, cal)
        ttfs = TTFSCode(T, enc)
        vmax = 1.2 * sc.max_value
        plot_response(ttfs, vmax, ax, relu=True, color="C0", linewidth=1.6, label=f"TTFS (eq. 7), {T} values")
        n_sc = len(sc.codebook()) - 1
        plot_response(sc, vmax, ax, relu=False, color="C3", linewidth=1.2, label=f"SC-TTFS, {n_sc} values")
        for value, color in ((ttfs.max_value, "C0"), (sc.max_value, "C3")):
            ax.axhline(value, color=color, linewidth=0.6, linestyle=":")
        ax.set_title(f"T = {T} (CIFAR10 kernels, Table 1)")
        ax.set_xlim(0, vmax)
        ax.set_ylim(0, vmax)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Response of the code vs ReLU (cf. Fig. 1(b))")
    return save_figure(fig, outdir, "fig1b_response")


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else OUT):
        print(path)
