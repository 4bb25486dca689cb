r"""Brian2 neurons and synapses that implement the SC-TTFS and TTFS rule of :mod:`.coding`.

A spiking layer is a :class:`~brian2.NeuronGroup` that, window after window of ``T`` steps,

* **encodes** the potential ``v`` it holds (eqs. 9-13): the group's ``spike`` event is the
  encoding spike (threshold ``v >= theta_e``, subtractive reset ``v -= theta_e``, eq. 11); the
  custom event ``calibration`` is the calibration spike (``v >= theta_c`` after the encoding
  spike, then ``v = 0`` and silence until the window ends, eqs. 12-13);
* **decodes** the previous layer's spikes into ``v_next`` (eqs. 16-17): a synapse adds
  ``w * theta_e_pre`` for an encoding spike and ``w * theta_c_pre`` for a calibration spike.

At each window boundary ``v <- v_next`` and ``v_next <- b`` (the bias, added once at the start of
the decoding window), so a layer decodes image ``n+1`` while it encodes image ``n``: windows are
pipelined as in the paper's Fig. 2(b).

Scheduling, inside one time step of ``dt``:

====================  =====================================================================
``start``             window boundary (every ``T`` steps); threshold lookup for this step
``thresholds``        encoding spike: ``not enc_done and v >= theta_e``
``synapses``          encoding pathway: ``v_next_post += w * theta_e_pre``
``resets`` order 0    encoding reset: ``v = v - theta_e``
``resets`` order 1    calibration check, *after* the encoding reset, so ``t_cal == t_enc`` is
                      possible when the residual allows it (Brian2 checks custom events before
                      resets by default, which would see the un-reset potential)
``resets`` order 2    calibration pathway: ``v_next_post += w * theta_c_pre``
``resets`` order 3    calibration reset: ``v = 0``, silent for the rest of the window
====================  =====================================================================

The step inside the window is an integer (``timestep(t, dt) % T``), and the thresholds are read
from the code's float64 lookup table through a :class:`~brian2.TimedArray`, so the decisions
are exactly those of :meth:`SCTTFSCode.spike_times` (no float time comparisons, no second
evaluation of ``exp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import brian2 as b2
import numpy as np

from ..coding import NO_SPIKE, CodeBase, SCTTFSCode, TTFSCode, as_potentials
from .targets import use_target

__all__ = [
    "spiking_layer",
    "integrating_layer",
    "layer_synapses",
    "encode_layer",
    "LayerMonitors",
    "spike_steps",
]

#: Slot of each part of the calibration machinery (see the module docstring).
CAL_THRESHOLD_SLOT = ("resets", 1)
CAL_PATHWAY_SLOT = ("resets", 2)
CAL_RESET_SLOT = ("resets", 3)


def _dim(unit: Any) -> str:
    if unit is None:
        return "1"
    if not isinstance(unit, b2.Quantity) or unit.is_dimensionless or float(unit) <= 0:
        raise TypeError(f"unit must be None or a positive Brian2 quantity such as mV (got {unit!r})")
    return b2.get_unit(unit.dim).name


def _check_code(code: Any) -> CodeBase:
    if not isinstance(code, (SCTTFSCode, TTFSCode)):
        raise TypeError(f"code must be an SCTTFSCode or a TTFSCode (got {type(code).__name__})")
    return code


def _check_dt(dt: Any) -> b2.Quantity:
    if not isinstance(dt, b2.Quantity) or dt.dim is not b2.second.dim or float(dt) <= 0:
        raise TypeError(f"dt must be a positive Brian2 time such as 1*ms (got {dt!r})")
    return dt


def spiking_layer(
    N: int,
    code: SCTTFSCode | TTFSCode,
    *,
    name: str,
    dt: b2.Quantity = 1 * b2.ms,
    unit: b2.Quantity | None = None,
    window_input: str | None = None,
    namespace: dict | None = None,
) -> b2.NeuronGroup:
    """A group of ``N`` SC-TTFS (or TTFS) neurons that encode once per window of ``code.T`` steps.

    Parameters
    ----------
    N : int
        Number of neurons.
    code : SCTTFSCode or TTFSCode
        The layer's code: kernels and window length.
    name : str
        Brian2 name of the group; the threshold tables are named ``{name}_theta_e`` / ``_theta_c``.
    dt : Quantity
        Time step (default 1 ms); a window lasts ``code.T * dt``.
    unit : Quantity, optional
        Unit of the membrane potential (e.g. ``mV``); thresholds are the tables times ``unit``.
        ``None`` (default) keeps potentials dimensionless, which is exact against :mod:`.coding`.
    window_input : str, optional
        Expression for the potential to encode at each window boundary instead of ``v_next``
        (e.g. ``"I_in(t, i)"`` for a layer fed by a 2-D TimedArray, given in ``namespace``).
    namespace : dict, optional
        Extra names for ``window_input``.

    Notes
    -----
    Variables: ``v`` (encoded potential), ``v_next`` (decoding accumulator), ``b`` (bias),
    ``enc_done``/``cal_done`` (this window's spikes happened), shared ``theta_e``/``theta_c``
    (this step's thresholds). Events: ``spike`` (encoding), ``calibration`` (SC-TTFS only).
    """
    code = _check_code(code)
    dt = _check_dt(dt)
    dim = _dim(unit)
    scale = 1.0 if unit is None else unit
    T = code.T
    sc = code.calibrate is not None
    ns = dict(namespace or {})
    ns[f"{name}_theta_e"] = b2.TimedArray(np.asarray(code.table_e) * scale, dt=dt, name=f"{name}_theta_e")
    lookup = f"theta_e = {name}_theta_e((timestep(t, dt) % {T}) * dt)"
    model = f"""
        v : {dim}
        v_next : {dim}
        b : {dim} (constant)
        enc_done : boolean
        theta_e : {dim} (shared)
        """
    events = {}
    if sc:
        ns[f"{name}_theta_c"] = b2.TimedArray(np.asarray(code.table_c) * scale, dt=dt, name=f"{name}_theta_c")
        lookup += f"\ntheta_c = {name}_theta_c((timestep(t, dt) % {T}) * dt)"
        model += f"""
        cal_done : boolean
        theta_c : {dim} (shared)
        """
        events["calibration"] = "enc_done and not cal_done and v >= theta_c"
    G = b2.NeuronGroup(
        N,
        model,
        threshold="not enc_done and v >= theta_e",
        reset="v = v - theta_e\nenc_done = True",  # eq. 11, subtractive
        events=events,
        dt=dt,
        name=name,
        namespace=ns,
    )
    source = window_input if window_input is not None else "v_next"
    window = f"v = {source}\nv_next = b\nenc_done = False"
    if sc:
        window += "\ncal_done = False"
        G.thresholder["calibration"].when, G.thresholder["calibration"].order = CAL_THRESHOLD_SLOT
        when, order = CAL_RESET_SLOT
        G.run_on_event("calibration", "v = 0*v\ncal_done = True", when=when, order=order)
    G.run_regularly(window, dt=T * dt, when="start", order=0, name=f"{name}_window")
    G.run_regularly(lookup, when="start", order=1, name=f"{name}_lookup")
    G.add_attribute("code")
    G.code = code  # the rule it implements, for the network builder and the monitors
    return G


def integrating_layer(
    N: int, T: int, *, name: str, dt: b2.Quantity = 1 * b2.ms, unit: b2.Quantity | None = None
) -> b2.NeuronGroup:
    """The output layer: it only integrates (eq. 16). At each window boundary the completed
    potential moves to ``v`` (the prediction is its argmax) and ``v_next`` restarts at ``b``."""
    dt = _check_dt(dt)
    dim = _dim(unit)
    G = b2.NeuronGroup(N, f"v : {dim}\nv_next : {dim}\nb : {dim} (constant)", dt=dt, name=name)
    G.run_regularly("v = v_next\nv_next = b", dt=T * dt, when="start", order=0, name=f"{name}_window")
    return G


def layer_synapses(
    pre: b2.NeuronGroup,
    post: b2.NeuronGroup,
    *,
    name: str,
    delay_steps: int = 0,
    weight: str = "w : 1",
) -> b2.Synapses:
    """Synapses decoding ``pre``'s spikes into ``post.v_next`` (eqs. 16-17).

    One Synapses object carries both pathways (``enc`` on the ``spike`` event, ``cal`` on the
    ``calibration`` event), so the connectivity is stored once. ``delay_steps`` delays both
    (residual shortcuts are delayed by whole windows; the value decoded is the threshold at the
    emission step, which a delay of a multiple of ``T`` steps preserves). ``weight`` is the
    weight declaration (``"w : 1 (linked)"`` to share conv kernels through an index).
    """
    sc = "calibration" in pre.events
    on_pre = {"enc": "v_next_post += w * theta_e_pre"}
    on_event = {"enc": "spike"}
    if sc:
        on_pre["cal"] = "v_next_post += w * theta_c_pre"
        on_event["cal"] = "calibration"
    # always a scalar delay (0 included): without one, Brian2 gives every synapse its own
    # float64 delay per pathway (16 bytes per synapse here, and 4 more in each spike queue)
    delay = {key: delay_steps * pre.clock.dt for key in on_pre}
    S = b2.Synapses(
        pre, post, weight, on_pre=on_pre, on_event=on_event, delay=delay, dt=pre.clock.dt, name=name
    )
    if sc:
        S.cal.when, S.cal.order = CAL_PATHWAY_SLOT
    return S


def spike_steps(t: np.ndarray, dt: b2.Quantity, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Split monitor times into (window index, step inside the window), as integers."""
    step = np.round(np.asarray(t) / float(dt)).astype(np.int64)
    return step // T, step % T


@dataclass
class LayerMonitors:
    """The spike and calibration monitors of one spiking layer."""

    spikes: b2.SpikeMonitor
    calibrations: b2.EventMonitor | None

    @classmethod
    def attach(cls, G: b2.NeuronGroup, record: Any = True) -> LayerMonitors:
        spikes = b2.SpikeMonitor(G, record=record, name=f"{G.name}_spikes")
        cal = None
        if "calibration" in G.events:
            cal = b2.EventMonitor(G, "calibration", record=record, name=f"{G.name}_calibrations")
            cal.when, cal.order = CAL_PATHWAY_SLOT
        return cls(spikes, cal)

    @property
    def objects(self) -> list:
        return [m for m in (self.spikes, self.calibrations) if m is not None]


def encode_layer(
    v: Any,
    code: SCTTFSCode | TTFSCode,
    *,
    dt: b2.Quantity = 1 * b2.ms,
    unit: b2.Quantity | None = None,
    target: str = "numpy",
    return_monitors: bool = False,
):
    """Encode potentials ``v`` with one Brian2 layer in one run; returns ``(t_enc, t_cal)``.

    All neurons (any number, any shape of ``v``) are simulated in a single ``run`` of one window.
    The result is the same as :meth:`SCTTFSCode.spike_times` (int64 arrays of ``v``'s shape,
    ``-1`` = no spike), computed by Brian2 events instead of the reference loop.

    ``unit`` gives the potentials a unit (``v`` is then taken to be in that unit);
    ``target`` is ``"numpy"`` (default), ``"cython"`` or ``"cpp_standalone"``.
    """
    code = _check_code(code)
    arr = np.asarray(as_potentials(v), dtype=np.float64)
    shape = arr.shape
    flat = arr.reshape(-1)
    if flat.size == 0:
        empty = np.full(shape, NO_SPIKE, dtype=np.int64)
        return empty, empty.copy()
    scale = 1.0 if unit is None else unit
    with use_target(target):
        G = spiking_layer(flat.size, code, name="encoder", dt=dt, unit=unit)
        G.v_next = flat * scale
        mon = LayerMonitors.attach(G)
        net = b2.Network(G, *mon.objects)
        net.run(code.T * dt, namespace={})
        t_enc = _first_steps(mon.spikes, flat.size, dt, code.T)
        t_cal = (
            _first_steps(mon.calibrations, flat.size, dt, code.T)
            if mon.calibrations is not None
            else np.full(flat.size, NO_SPIKE, dtype=np.int64)
        )
    if return_monitors:
        return t_enc.reshape(shape), t_cal.reshape(shape), mon
    return t_enc.reshape(shape), t_cal.reshape(shape)


def _first_steps(monitor, N: int, dt, T: int) -> np.ndarray:
    out = np.full(N, NO_SPIKE, dtype=np.int64)
    i = np.asarray(monitor.i[:])
    _, step = spike_steps(monitor.t[:], dt, T)
    if np.unique(i).size != i.size:
        raise RuntimeError("a neuron spiked twice with the same event in one window: the rule was violated")
    out[i] = step
    return out
