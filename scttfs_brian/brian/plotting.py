"""Plots of SC-TTFS layers drawn from Brian2 monitors, in the style of ``brian2tools``.

Every function takes ``axes=None`` (a new figure's axes when omitted) and ``**kwds`` passed on to
matplotlib, and returns the axes. Time is drawn in physical units (``time_unit=ms`` by default;
``time_unit=None`` draws simulation steps ``t / dt``), with the window boundaries as thin vertical
lines. A legend entry is added once per axes, however many layers or neurons share it.

* :func:`plot_raster`: encoding spikes (``|``) and calibration spikes (``x``) of a layer;
* :func:`plot_membrane`: a recorded potential with the encoding and calibration thresholds
  :math:`\\theta_e(t)`, :math:`\\theta_c(t)` of eq. 14 as staircases per window, each neuron's
  spikes marked on the threshold they crossed, in the colour of its trace;
* :func:`plot_response`: the response ``code.quantize(v)`` against the ANN's ReLU (Fig. 1(b)).

No backend is chosen here; scripts select ``Agg`` before importing pyplot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import Quantity, ms

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
_NO_LEGEND = "_nolegend_"


def _axes(axes):
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots()
    return axes


def _once(axes, label: str | None) -> str:
    """``label`` unless the axes already carry an artist with that label (no repeated legend)."""
    if not label:
        return _NO_LEGEND
    taken = {a.get_label() for a in (*axes.get_lines(), *axes.collections)}
    return _NO_LEGEND if label in taken else label


def _time(t: Any, dt: Any, time_unit: Any) -> np.ndarray:
    """Monitor times in ``time_unit`` (``None``: in steps of ``dt``)."""
    return np.asarray(t / (dt if time_unit is None else time_unit), dtype=np.float64)


def _time_label(time_unit: Any) -> str:
    return "time step" if time_unit is None else f"time ({time_unit})"


def _window_lines(axes, window: float | None, lo: float, hi: float) -> None:
    if not window:
        return
    for x in np.arange(np.ceil(lo / window - 1e-9) * window, hi + 1e-9 * window, window):
        axes.axvline(x, color="0.8", linewidth=0.8, zorder=0)


def _steps_per_code_step(group) -> int:
    return int(getattr(group, "steps_per_code_step", 1))


def plot_raster(
    spike_monitor,
    calibration_monitor=None,
    axes=None,
    *,
    offset: int = 0,
    T: int | None = None,
    label: str | None = None,
    time_unit: Any = ms,
    **kwds,
):
    """Raster of a spiking layer: encoding spikes as ``|``, calibration spikes as red ``x``.

    Parameters
    ----------
    spike_monitor : brian2.SpikeMonitor
        Encoding spikes (the group's ``spike`` event).
    calibration_monitor : brian2.EventMonitor, optional
        Calibration spikes (the ``calibration`` event, see :class:`scttfs_brian.brian.monitors.LayerMonitors`).
    axes : matplotlib.axes.Axes, optional
    offset : int
        Added to neuron indices (to stack several layers on one axes).
    T : int, optional
        Window length in code steps for the boundary lines; by default the monitored group's.
    label : str, optional
        Legend label prefix (``"<label> encoding"`` / ``"<label> calibration"``); each label
        enters the legend once per axes.
    time_unit : Quantity or None
        Unit of the time axis (default ``ms``); ``None`` draws simulation steps.
    **kwds
        Passed to the encoding-spike ``plot`` call (e.g. ``color``).
    """
    axes = _axes(axes)
    prev_ylim = axes.get_ylim() if axes.has_data() else None
    source = spike_monitor.source
    dt = spike_monitor.clock.dt
    x = _time(spike_monitor.t[:], dt, time_unit)
    style = {**ENCODING_STYLE, **kwds}
    enc_label = _once(axes, f"{label} encoding" if label else "encoding spike")
    axes.plot(x, np.asarray(spike_monitor.i[:]) + offset, label=enc_label, **style)
    xs = [x]
    if calibration_monitor is not None:
        xc = _time(calibration_monitor.t[:], dt, time_unit)
        cal_label = _once(axes, f"{label} calibration" if label else "calibration spike")
        axes.plot(xc, np.asarray(calibration_monitor.i[:]) + offset, label=cal_label, **CALIBRATION_STYLE)
        xs.append(xc)
    if T is None:
        T = getattr(source, "T", None)
    step = float(_time(dt, dt, time_unit))
    window = None if T is None else T * _steps_per_code_step(source) * step
    allx = np.concatenate(xs)
    hi = max(
        float(allx.max()) + step if allx.size else 0.0, float(_time(spike_monitor.clock.t, dt, time_unit))
    )
    _window_lines(axes, window, 0.0, hi)
    axes.set_xlim(-0.5 * step, hi + 0.5 * step)
    lo_y, hi_y = prev_ylim if prev_ylim is not None else (np.inf, -np.inf)
    axes.set_ylim(min(lo_y, offset - 0.5), max(hi_y, offset + len(source) - 0.5))
    axes.set_xlabel(_time_label(time_unit))
    axes.set_ylabel("neuron index")
    return axes


def _threshold_tables(code, n: int, factor: float) -> tuple[np.ndarray, np.ndarray | None]:
    """eq. 14 at every simulation step of a window (``t = s / n``), times ``factor``."""
    t = np.arange(code.T * n) / n
    tab_e = code.encode(t) * factor if n > 1 else np.asarray(code.table_e) * factor
    if not code.has_calibration:
        return tab_e, None
    tab_c = code.calibrate(t) * factor if n > 1 else np.asarray(code.table_c) * factor
    return tab_e, tab_c


def _values_unit(values: Any, unit: Any, source) -> tuple[Any, str]:
    """The unit to draw ``values`` in and its label suffix."""
    if unit is None and isinstance(values, Quantity) and not values.is_dimensionless:
        unit = getattr(source, "unit", None) or values.get_best_unit()
    return unit, "" if unit is None else f" ({unit})"


def plot_membrane(
    state_monitor,
    code: SCTTFSCode | TTFSCode | None = None,
    neurons: int | Sequence[int] | None = None,
    axes=None,
    *,
    variable: str = "v",
    windows: Iterable[int] | None = None,
    spike_monitor=None,
    calibration_monitor=None,
    unit: Any = None,
    thresholds: bool = True,
    time_unit: Any = ms,
    **kwds,
):
    """A recorded potential of some neurons with both threshold staircases (eq. 14).

    Parameters
    ----------
    state_monitor : brian2.StateMonitor
        Records ``variable`` of the neurons. The value recorded at step ``t`` is drawn over
        ``[t, t + dt)``. With the default schedule (``when="start"``) it is the potential this
        step's encoding decision compares with :math:`\\theta_e(t)` (the window boundary runs
        before, at ``before_start``); ``when="end"`` shows it after the step's resets and
        synaptic input.
    code : SCTTFSCode or TTFSCode, optional
        The thresholds to draw; by default the recorded group's (``G.code_of(i)`` per neuron
        when its kernels differ between neurons). On finer time (``steps_per_code_step=n``)
        the staircase has ``n`` steps per code step.
    neurons : int or sequence of int, optional
        Neuron indices (of the group; they must be recorded). Default: every recorded neuron.
    axes : matplotlib.axes.Axes, optional
    variable : str
        Recorded variable (``"v"``, ``"v_next"``...).
    windows : iterable of int, optional
        Windows in which to draw the thresholds (default: every recorded window).
    spike_monitor, calibration_monitor : optional
        When given, each neuron's encoding (``o``) and calibration (``x``) spikes are marked on
        the threshold they crossed, :math:`\\theta_e(t_e)` and :math:`\\theta_c(t_c)`, in the
        colour of the neuron's trace.
    unit : Quantity, optional
        Unit of the potential axis; default: the layer's ``unit`` (dimensionless layers: none).
    thresholds : bool
        Draw the threshold staircases (default True).
    time_unit : Quantity or None
        Unit of the time axis (default ``ms``); ``None`` draws simulation steps.
    **kwds
        Passed to the potential's ``plot`` calls.
    """
    axes = _axes(axes)
    source = state_monitor.source
    dt = state_monitor.clock.dt
    t = state_monitor.t[:]
    if len(t) == 0:
        raise ValueError("the StateMonitor recorded nothing; run the network before plotting")
    if neurons is None:
        neurons = np.asarray(state_monitor.record).reshape(-1)
    elif isinstance(neurons, (int, np.integer)):
        neurons = [int(neurons)]
    neurons = [int(i) for i in neurons]
    steps = np.round(np.asarray(t / dt)).astype(np.int64)
    step = float(_time(dt, dt, time_unit))
    x = np.append(_time(t, dt, time_unit), _time(t[-1] + dt, dt, time_unit))
    unit, suffix = _values_unit(getattr(state_monitor[neurons[0]], variable), unit, source)
    layer_unit = getattr(source, "unit", None)
    factor = 1.0 if unit is None or layer_unit is None else float(layer_unit / unit)
    n = _steps_per_code_step(source)

    per_neuron = code is None and getattr(source, "kernels", "shared") == "per_neuron"

    def code_for(i: int):
        if code is not None:
            return code
        return source.code_of(i) if per_neuron else getattr(source, "code", None)

    marks = spike_monitor is not None or calibration_monitor is not None
    if (thresholds or marks) and code_for(neurons[0]) is None:
        raise ValueError(
            f"{source.name} has no code to draw thresholds from: pass code=..., or thresholds=False "
            "and no spike monitors"
        )

    colours = {}
    for j, i in enumerate(neurons):
        vals = getattr(state_monitor[i], variable)[:]
        vals = np.asarray(vals / unit if unit is not None else vals, dtype=np.float64)
        colours[i] = kwds.get("color", f"C{j % 10}")
        style = {
            "drawstyle": "steps-post",
            "label": _once(axes, f"{variable}[{i}]"),
            **kwds,
            "color": colours[i],
        }
        axes.plot(x, np.append(vals, vals[-1]), **style)
    if thresholds:
        W = code_for(neurons[0]).T * n
        all_windows = range(int(steps[0]) // W, int(steps[-1]) // W + 1)
        for i in neurons if per_neuron else neurons[:1]:
            tab_e, tab_c = _threshold_tables(code_for(i), n, factor)
            for w in all_windows if windows is None else windows:
                ts = _time(np.arange(w * W, (w + 1) * W + 1) * dt, dt, time_unit)
                for tab, name, look in (
                    (tab_e, r"$\theta_e(t)$", {"color": "0.3", "linestyle": "--", "linewidth": 1.2}),
                    (tab_c, r"$\theta_c(t)$", {"color": "C3", "linestyle": ":", "linewidth": 1.4}),
                ):
                    if tab is None:
                        continue
                    if per_neuron:
                        look = {**look, "color": colours[i]}
                    axes.plot(
                        ts, np.append(tab, tab[-1]), drawstyle="steps-post", label=_once(axes, name), **look
                    )
    for mon, kind, marker, name in (
        (spike_monitor, 0, "o", "encoding spike"),
        (calibration_monitor, 1, "x", "calibration spike"),
    ):
        if mon is None:
            continue
        idx = np.asarray(mon.i[:])
        st = np.round(np.asarray(mon.t[:] / dt)).astype(np.int64)
        for i in neurons:
            table = _threshold_tables(code_for(i), n, factor)[kind]
            keep = idx == i
            if table is None or not keep.any():
                continue
            axes.plot(
                _time(st[keep] * dt, dt, time_unit) + step / 2, table[st[keep] % len(table)], linestyle="none",
                marker=marker, markersize=7, markeredgewidth=1.5, markerfacecolor="none", color=colours[i],
            )  # fmt: skip
        # one neutral legend entry per kind, however many neurons spiked
        axes.plot(
            [],
            [],
            linestyle="none",
            marker=marker,
            markerfacecolor="none",
            color="k",
            label=_once(axes, name),
        )
    first = code_for(neurons[0])
    _window_lines(axes, None if first is None else first.T * n * step, float(x[0]), float(x[-1]))
    axes.set_xlim(float(x[0]), float(x[-1]))
    axes.set_xlabel(_time_label(time_unit))
    axes.set_ylabel(f"{variable}{suffix}")
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
        Draw ``max(0, v)`` as a dashed line (default True; once per axes).
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
    axes.plot(v, z, label=_once(axes, label), **kwds)
    if relu:
        relu_label = _once(axes, "ReLU")
        axes.plot(v, np.maximum(v, 0.0), linestyle="--", color="0.5", linewidth=1.0, label=relu_label)
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
