"""Plots of SC-TTFS layers drawn from Brian2 monitors, in the style of ``brian2tools``.

Every function takes ``axes=None`` (a new figure's axes when omitted) and ``**kwds`` passed on to
matplotlib, and returns the axes. Time is drawn in **time steps** (``t / dt``), with the window
boundaries (every ``T`` steps) as thin vertical lines, because the code lives on integer steps.

* :func:`plot_raster`: encoding spikes (``|``) and calibration spikes (``x``) of a layer;
* :func:`plot_membrane`: a recorded potential with the encoding and calibration thresholds
  :math:`\\theta_e(t)`, :math:`\\theta_c(t)` as staircases per window (eq. 14), spikes marked where
  they cross;
* :func:`plot_response`: the response ``code.quantize(v)`` against the ANN's ReLU (Fig. 1(b)).

No backend is chosen here; scripts select ``Agg`` before importing pyplot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..coding import SCTTFSCode, TTFSCode

__all__ = [
    "plot_raster",
    "plot_membrane",
    "plot_response",
    "save_figure",
    "ENCODING_STYLE",
    "CALIBRATION_STYLE",
]

#: Marker style of encoding spikes.
ENCODING_STYLE = {"marker": "|", "color": "k", "markersize": 9, "markeredgewidth": 1.5, "linestyle": "none"}
#: Marker style of calibration spikes.
CALIBRATION_STYLE = {
    "marker": "x",
    "color": "C3",
    "markersize": 6,
    "markeredgewidth": 1.5,
    "linestyle": "none",
}


def _axes(axes):
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots()
    return axes


def _steps(t: Any, dt: Any) -> np.ndarray:
    """Monitor times as (float) step numbers."""
    return np.asarray(t, dtype=np.float64) / float(dt)


def _window_lines(axes, T: int | None, lo: float, hi: float) -> None:
    if not T:
        return
    for x in np.arange(np.ceil(lo / T) * T, hi + 1e-9, T):
        axes.axvline(x, color="0.8", linewidth=0.8, zorder=0)


def _code_of(monitor) -> Any:
    return getattr(getattr(monitor, "source", None), "code", None)


def plot_raster(
    spike_monitor,
    calibration_monitor=None,
    axes=None,
    *,
    offset: int = 0,
    T: int | None = None,
    label: str | None = None,
    **kwds,
):
    """Raster of a spiking layer: encoding spikes as ``|``, calibration spikes as red ``x``.

    Parameters
    ----------
    spike_monitor : brian2.SpikeMonitor
        Encoding spikes (the group's ``spike`` event).
    calibration_monitor : brian2.EventMonitor, optional
        Calibration spikes (the ``calibration`` event, see :class:`scttfs_brian.brian.neurons.LayerMonitors`).
    axes : matplotlib.axes.Axes, optional
    offset : int
        Added to neuron indices (to stack several layers on one axes).
    T : int, optional
        Window length for the boundary lines; by default the ``code`` of the monitored group.
    label : str, optional
        Legend label prefix (``"<label> encoding"`` / ``"<label> calibration"``).
    **kwds
        Passed to the encoding-spike ``plot`` call (e.g. ``color``).
    """
    axes = _axes(axes)
    prev_ylim = axes.get_ylim() if axes.has_data() else None
    dt = spike_monitor.clock.dt
    x = _steps(spike_monitor.t[:], dt)
    style = {**ENCODING_STYLE, **kwds}
    enc_label = f"{label} encoding" if label else "encoding spike"
    axes.plot(x, np.asarray(spike_monitor.i[:]) + offset, label=enc_label, **style)
    xs = [x]
    if calibration_monitor is not None:
        xc = _steps(calibration_monitor.t[:], dt)
        cal_label = f"{label} calibration" if label else "calibration spike"
        axes.plot(xc, np.asarray(calibration_monitor.i[:]) + offset, label=cal_label, **CALIBRATION_STYLE)
        xs.append(xc)
    if T is None:
        code = _code_of(spike_monitor)
        T = code.T if code is not None else None
    n = len(spike_monitor.source)
    allx = np.concatenate(xs)
    hi = max(float(allx.max()) + 1 if allx.size else 0.0, float(spike_monitor.clock.t / dt))
    _window_lines(axes, T, 0.0, hi)
    axes.set_xlim(-0.5, hi + 0.5)
    lo_y, hi_y = prev_ylim if prev_ylim is not None else (np.inf, -np.inf)
    axes.set_ylim(min(lo_y, offset - 0.5), max(hi_y, offset + n - 0.5))
    axes.set_xlabel("time step")
    axes.set_ylabel("neuron index")
    return axes


def plot_membrane(
    state_monitor,
    code: SCTTFSCode | TTFSCode,
    neurons: int | Sequence[int],
    axes=None,
    *,
    variable: str = "v",
    windows: Iterable[int] | None = None,
    spike_monitor=None,
    calibration_monitor=None,
    unit: Any = None,
    thresholds: bool = True,
    **kwds,
):
    """A recorded potential of some neurons with both threshold staircases (eq. 14).

    Parameters
    ----------
    state_monitor : brian2.StateMonitor
        Records ``variable`` of the neurons. The value recorded at step ``t`` is drawn over
        ``[t, t+1)``. Which moment of the step it shows depends on the monitor's ``when``:
        ``when="thresholds", order=-1`` shows the potential that step ``t``'s encoding decision
        compares with :math:`\\theta_e(t)` (after the window boundary at ``start``);
        ``when="end"`` the potential after the step's resets and synaptic input.
    code : SCTTFSCode or TTFSCode
        The layer's code: the thresholds drawn are ``code.table_e`` / ``code.table_c`` at the
        step inside the window, ``t % T``.
    neurons : int or sequence of int
        Neuron indices (of the group; they must be recorded).
    axes : matplotlib.axes.Axes, optional
    variable : str
        Recorded variable (``"v"``, ``"v_next"``...).
    windows : iterable of int, optional
        Windows in which to draw the thresholds (default: every recorded window).
    spike_monitor, calibration_monitor : optional
        When given, each neuron's encoding (``o``) and calibration (``x``) spikes are marked on
        the threshold they crossed, :math:`\\theta_e(t_e)` and :math:`\\theta_c(t_c)`.
    unit : Quantity, optional
        Divide the recorded values by this unit (for layers built with ``unit=mV``).
    thresholds : bool
        Draw the threshold staircases (default True).
    **kwds
        Passed to the potential's ``plot`` calls.
    """
    axes = _axes(axes)
    if isinstance(neurons, (int, np.integer)):
        neurons = [int(neurons)]
    dt = state_monitor.clock.dt
    steps = np.round(_steps(state_monitor.t[:], dt)).astype(np.int64)
    if steps.size == 0:
        raise ValueError("the StateMonitor recorded nothing; run the network before plotting")
    x = np.append(steps, steps[-1] + 1)
    T = code.T
    for j, i in enumerate(neurons):
        vals = np.asarray(getattr(state_monitor[i], variable)[:])
        if unit is not None:
            vals = vals / float(unit)
        vals = np.append(vals, vals[-1])
        style = {"drawstyle": "steps-post", "color": f"C{j % 10}", "label": f"{variable}[{i}]", **kwds}
        axes.plot(x, vals, **style)
    if thresholds:
        all_windows = range(int(steps[0]) // T, (int(steps[-1]) // T) + 1)
        for n, w in enumerate(all_windows if windows is None else windows):
            ts = np.arange(w * T, (w + 1) * T + 1)
            tab = np.append(code.table_e, code.table_e[-1])
            axes.plot(
                ts, tab, drawstyle="steps-post", color="0.3", linestyle="--", linewidth=1.2,
                label=r"$\theta_e(t)$" if n == 0 else None,
            )  # fmt: skip
            if code.has_calibration:
                tab = np.append(code.table_c, code.table_c[-1])
                axes.plot(
                    ts, tab, drawstyle="steps-post", color="C3", linestyle=":", linewidth=1.4,
                    label=r"$\theta_c(t)$" if n == 0 else None,
                )  # fmt: skip
    for mon, table, style, name in (
        (spike_monitor, code.table_e, {"marker": "o", "color": "k"}, "encoding spike"),
        (calibration_monitor, code.table_c, {"marker": "x", "color": "C3"}, "calibration spike"),
    ):
        if mon is None or table is None:
            continue
        idx = np.asarray(mon.i[:])
        st = np.round(_steps(mon.t[:], dt)).astype(np.int64)
        keep = np.isin(idx, list(neurons))
        axes.plot(
            st[keep] + 0.5, table[st[keep] % T], linestyle="none", markersize=7, markeredgewidth=1.5,
            markerfacecolor="none", label=name, **style,
        )  # fmt: skip
    _window_lines(axes, T, float(x[0]), float(x[-1]))
    axes.set_xlim(float(x[0]), float(x[-1]))
    axes.set_xlabel("time step")
    axes.set_ylabel(variable)
    return axes


def plot_response(
    code: SCTTFSCode | TTFSCode,
    vmax: float,
    axes=None,
    *,
    vmin: float = 0.0,
    n: int = 4001,
    relu: bool = True,
    label: str | None = None,
    **kwds,
):
    """The response of a code, ``code.quantize(v)`` against ``v`` (the SNN's activation function,
    eq. 7 for TTFS), with the ANN's ReLU dashed (Fig. 1(b)).

    Parameters
    ----------
    code : SCTTFSCode or TTFSCode
    vmax : float
        Largest potential drawn.
    axes : matplotlib.axes.Axes, optional
    vmin : float
        Smallest potential drawn (default 0; negative potentials are silent).
    n : int
        Number of sample points (the response is piecewise constant; it is drawn from samples).
    relu : bool
        Draw ``max(0, v)`` as a dashed line (default True).
    label : str, optional
        Legend label of the response (default: the code's class name and ``T``).
    **kwds
        Passed to the response's ``plot`` call.
    """
    axes = _axes(axes)
    if not vmax > vmin:
        raise ValueError(f"vmax must be > vmin (got vmin={vmin}, vmax={vmax})")
    v = np.linspace(vmin, vmax, int(n))
    z = code.quantize(v)
    if label is None:
        label = f"{'SC-TTFS' if code.has_calibration else 'TTFS'}, T={code.T}"
    axes.plot(v, z, label=label, **kwds)
    if relu:
        axes.plot(v, np.maximum(v, 0.0), linestyle="--", color="0.5", linewidth=1.0, label="ReLU")
    axes.set_xlabel("membrane potential $v$ (ANN activation)")
    axes.set_ylabel("decoded value $z$")
    return axes


def save_figure(fig, outdir: str | Path, name: str, *, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<outdir>/<name>.png`` and ``.pdf``; returns the two paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.png", outdir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths
