r"""Brian2 neurons and synapses that implement the SC-TTFS and TTFS rule of :mod:`.coding`.

A spiking layer (:func:`spiking_layer`) is a :class:`~brian2.NeuronGroup` that, window after
window of ``T`` code steps,

* **encodes** the potential ``v`` it holds (eqs. 9-13): the group's ``spike`` event is the
  encoding spike (threshold ``v >= theta_e``, subtractive reset ``v -= theta_e``, eq. 11); the
  custom event ``calibration`` is the calibration spike (``v >= theta_c`` after the encoding
  spike, then ``v = 0`` and silence until the window ends, eqs. 12-13);
* **decodes** the previous layer's spikes into ``v_next`` (eqs. 16-17): a synapse
  (:func:`layer_synapses`) adds ``w * theta_e_pre`` for an encoding spike and
  ``w * theta_c_pre`` for a calibration spike.

At each window boundary ``v <- v_next`` and ``v_next <- b`` (the bias, added once at the start of
the decoding window), so a layer decodes image ``n+1`` while it encodes image ``n``: windows are
pipelined as in the paper's Fig. 2(b). At ``t = 0`` the layer encodes ``v + v_next``: a potential
set with ``G.v = x`` (or ``G.v_next = x``) before ``run()`` is encoded in the first window. Between
two runs (``t > 0``, a window boundary ahead) set ``G.v_next``: the boundary replaces ``v``.

The thresholds (eq. 14) come from the code's table (``thresholds="table"``, the default, exact
against :meth:`SCTTFSCode.spike_times` on every target) or from eq. 14 written in the model
(``thresholds="equation"``: ``alpha_e, beta_e, k_e, alpha_c, beta_c, k_c`` are Brian2 variables,
shared or per neuron, and ``steps_per_code_step=n`` simulates ``n`` steps per code step). The
model strings, the schedule inside a step and the rounding note are in :mod:`.equations`.
"""

from __future__ import annotations

from typing import Any

import brian2 as b2
import numpy as np
from brian2.core.names import find_name

from ..coding import NO_SPIKE, CodeBase, SCTTFSCode, ThresholdKernel, TTFSCode, as_potentials
from .devices.targets import use_target
from .equations import (
    CAL_PATHWAY_SLOT,
    CAL_RESET_SLOT,
    CAL_THRESHOLD_SLOT,
    CALIBRATION_EVENT,
    CALIBRATION_PATHWAY,
    CALIBRATION_RESET,
    ENCODING_PATHWAY,
    ENCODING_RESET,
    ENCODING_THRESHOLD,
    KERNEL_PARAMETERS,
    KERNEL_SCOPES,
    THRESHOLD_MODES,
    THRESHOLD_UPDATE_SLOT,
    WINDOW_SLOT,
    spiking_model,
    threshold_update,
    window_update,
)
from .monitors import LayerMonitors, first_steps, spike_steps

__all__ = [
    "SCTTFSGroup",
    "spiking_layer",
    "integrating_layer",
    "layer_synapses",
    "encode_layer",
    "finer_time_code",
    "LayerMonitors",
    "spike_steps",
]


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
    if dt is None:
        # fixed now: the threshold table and the window clock are built for this dt
        return b2.defaultclock.dt
    if not isinstance(dt, b2.Quantity) or dt.dim is not b2.second.dim or float(dt) <= 0:
        raise TypeError(f"dt must be a positive Brian2 time such as 1*ms (got {dt!r})")
    return dt


def _check_steps(n: Any, thresholds: str = "equation") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"steps_per_code_step must be an integer >= 1 (got {n!r})")
    if n > 1 and thresholds != "equation":
        raise ValueError(
            f"steps_per_code_step={n} needs thresholds='equation' (the table holds one threshold "
            "per code step): pass thresholds='equation'"
        )
    return int(n)


def finer_time_code(code: SCTTFSCode | TTFSCode, steps_per_code_step: int) -> SCTTFSCode | TTFSCode:
    """The code a layer with ``steps_per_code_step=n`` implements, on its simulation steps.

    ``n`` steps per code step sample eq. 14 at ``t = s / n``: the thresholds are those of a
    code with ``n T`` steps and kernels ``k / n`` (``alpha``, ``beta`` unchanged). Its
    ``spike_times`` are the Brian2 layer's spike steps inside the window (up to the rounding of
    ``k (s / n)`` against ``(k / n) s`` at exact boundary ties), its ``quantize`` is the value
    the layer sends, and as ``n`` grows it approaches the continuous-time code.
    """
    code = _check_code(code)
    n = _check_steps(steps_per_code_step)

    def finer(kernel: ThresholdKernel) -> ThresholdKernel:
        return ThresholdKernel(alpha=kernel.alpha, beta=kernel.beta, k=kernel.k / n)

    if isinstance(code, SCTTFSCode):
        return SCTTFSCode(code.T * n, finer(code.encode), finer(code.calibrate))
    return TTFSCode(code.T * n, finer(code.encode))


class SCTTFSGroup(b2.NeuronGroup):
    """The :class:`~brian2.NeuronGroup` :func:`spiking_layer` returns; build it with that function.

    On top of a ``NeuronGroup`` it knows the code it implements (read-only attributes ``T``,
    ``steps_per_code_step``, ``window_steps``, ``thresholds``, ``kernels``, ``unit``) and guards
    ``code``: reading it gives the code the simulation uses; assigning it sets eq. 14's variables
    in equation mode and is refused in table mode (where it would change nothing).
    """

    def __init__(
        self, N: int, model: str, *, code: CodeBase, thresholds: str, kernels: str, steps: int, unit, **kwds
    ):
        # attribute access of Brian2 groups is switched on at the end of NeuronGroup.__init__
        self._scttfs = {
            "code": code,
            "thresholds": thresholds,
            "kernels": kernels,
            "steps": steps,
            "unit": unit,
        }
        super().__init__(N, model, **kwds)

    #: Code steps per window.
    T = property(lambda self: self._scttfs["code"].T)
    #: Simulation steps per code step (1 unless built on finer time).
    steps_per_code_step = property(lambda self: self._scttfs["steps"])
    #: ``"table"`` or ``"equation"``.
    thresholds = property(lambda self: self._scttfs["thresholds"])
    #: ``"shared"`` or ``"per_neuron"`` (eq. 14's parameters in equation mode).
    kernels = property(lambda self: self._scttfs["kernels"])
    #: Unit of the potentials (``None``: dimensionless).
    unit = property(lambda self: self._scttfs["unit"])

    @property
    def window_steps(self) -> int:
        """Simulation steps per window, ``T * steps_per_code_step``."""
        return self.T * self.steps_per_code_step

    @property
    def window_duration(self) -> b2.Quantity:
        """Duration of one window, ``window_steps * dt``."""
        return self.window_steps * self.clock.dt

    def code_of(self, i: int) -> SCTTFSCode | TTFSCode:
        """The code neuron ``i`` implements (per-neuron kernels in equation mode)."""
        built = self._scttfs["code"]
        if self.thresholds == "table":
            return built
        scale = 1.0 if self.unit is None else float(self.unit)
        kernels = []
        for kind in ("e", "c") if isinstance(built, SCTTFSCode) else ("e",):
            alpha, beta, k = (np.asarray(getattr(self, f"{p}_")).reshape(-1) for p in KERNEL_PARAMETERS[kind])
            j = 0 if alpha.size == 1 else int(i)
            kernels.append(ThresholdKernel(alpha=alpha[j] / scale, beta=beta[j], k=k[j]))
        return SCTTFSCode(built.T, *kernels) if len(kernels) == 2 else TTFSCode(built.T, kernels[0])

    @property
    def code(self) -> SCTTFSCode | TTFSCode:
        """The layer's code: in equation mode, built from the current ``alpha``, ``beta``, ``k``
        variables (a ``ValueError`` when they differ between neurons: use :meth:`code_of`)."""
        if self.thresholds == "table" or self.kernels == "shared":
            return self.code_of(0)
        names = [p for kind in KERNEL_PARAMETERS for p in KERNEL_PARAMETERS[kind] if p in self.variables]
        if any(np.unique(np.asarray(getattr(self, f"{p}_"))).size > 1 for p in names):
            raise ValueError(
                f"the kernels of {self.name} differ between neurons (kernels='per_neuron'): "
                f"use {self.name}.code_of(i) or read {', '.join(names)} directly"
            )
        return self.code_of(0)

    @code.setter
    def code(self, code: Any) -> None:
        code = _check_code(code)
        built = self._scttfs["code"]
        if self.thresholds == "table":
            raise AttributeError(
                f"{self.name} reads its thresholds from the table of the code it was built with "
                "(thresholds='table'): assigning .code would change nothing in the simulation. "
                "Build the layer with thresholds='equation' to change the kernels, or build a new layer"
            )
        if type(code) is not type(built) or code.T != built.T:
            raise ValueError(
                f"{self.name} implements a {type(built).__name__} with T={built.T} "
                f"(got a {type(code).__name__} with T={code.T}): only the kernels can change"
            )
        scale = 1.0 if self.unit is None else self.unit
        for kind, kernel in (("e", code.encode), ("c", getattr(code, "calibrate", None))):
            if kernel is None:
                continue
            alpha, beta, k = KERNEL_PARAMETERS[kind]
            setattr(self, alpha, kernel.alpha * scale)
            setattr(self, beta, kernel.beta)
            setattr(self, k, kernel.k)


def spiking_layer(
    N: int,
    code: SCTTFSCode | TTFSCode,
    *,
    name: str | None = None,
    dt: b2.Quantity | None = None,
    unit: b2.Quantity | None = None,
    window_input: str | None = None,
    namespace: dict | None = None,
    thresholds: str = "table",
    kernels: str = "shared",
    steps_per_code_step: int = 1,
) -> SCTTFSGroup:
    """A group of ``N`` SC-TTFS (or TTFS) neurons that encode once per window of ``code.T`` steps.

    Parameters
    ----------
    N : int
        Number of neurons.
    code : SCTTFSCode or TTFSCode
        The layer's code: kernels and window length.
    name : str, optional
        Brian2 name of the group (default: ``"spiking_layer"``, ``"spiking_layer_1"``, ...); its
        helper objects are named after it (``{name}_window``, ``{name}_thresholds``,
        ``{name}_theta_e``).
    dt : Quantity
        Simulation time step; default ``defaultclock.dt`` at the time of the call, as for a
        ``NeuronGroup`` (but fixed then: set ``defaultclock.dt`` first). A window lasts
        ``code.T * steps_per_code_step * dt``.
    unit : Quantity, optional
        Unit of the membrane potential (e.g. ``mV``): ``v``, ``v_next``, ``b``, the thresholds
        and ``alpha_e``/``alpha_c`` carry it. ``None`` (default) keeps them dimensionless.
    window_input : str, optional
        Expression for the potential to encode at each window boundary instead of ``v_next``
        (e.g. ``"I_in(t, i)"`` for a layer fed by a 2-D TimedArray, given in ``namespace``).
    namespace : dict, optional
        Extra names for ``window_input``.
    thresholds : {"table", "equation"}
        ``"table"`` (default): the thresholds are read from ``code.table_e``/``table_c``, bit-exact
        against :meth:`SCTTFSCode.spike_times`. ``"equation"``: eq. 14 in the model, from the
        group's variables ``alpha_e, beta_e, k_e`` (and ``alpha_c, beta_c, k_c``), initialised from
        ``code`` and free to change (``G.k_e = 0.5``) between runs.
    kernels : {"shared", "per_neuron"}
        Equation mode: one set of kernel parameters for the group (default) or one per neuron.
    steps_per_code_step : int
        Equation mode: ``n`` simulation steps per code step (default 1). The threshold decays
        between code steps (``t = s / n``), so spikes fall between code steps and carry the
        threshold at their time; see :func:`finer_time_code` for the equivalent code.

    Returns
    -------
    SCTTFSGroup
        A ``NeuronGroup``: events ``spike`` (encoding) and ``calibration`` (SC-TTFS only);
        variables as in :mod:`.equations`.
    """
    code = _check_code(code)
    dt = _check_dt(dt)
    dim = _dim(unit)
    if thresholds not in THRESHOLD_MODES:
        raise ValueError(f"thresholds must be one of {THRESHOLD_MODES} (got {thresholds!r})")
    if kernels not in KERNEL_SCOPES:
        raise ValueError(f"kernels must be one of {KERNEL_SCOPES} (got {kernels!r})")
    n = _check_steps(steps_per_code_step, thresholds)
    name = find_name(name if name is not None else "spiking_layer*")
    scale = 1.0 if unit is None else unit
    sc = isinstance(code, SCTTFSCode)
    ns = dict(namespace or {})
    tables = {}
    if thresholds == "table":
        for kind, table in (("e", code.table_e), ("c", code.table_c if sc else None)):
            if table is not None:
                tables[kind] = f"{name}_theta_{kind}"
                ns[tables[kind]] = b2.TimedArray(np.asarray(table) * scale, dt=dt, name=tables[kind])
    G = SCTTFSGroup(
        N, spiking_model(dim, sc, thresholds, kernels),
        code=code, thresholds=thresholds, kernels=kernels, steps=n, unit=unit,
        threshold=ENCODING_THRESHOLD, reset=ENCODING_RESET,
        events={"calibration": CALIBRATION_EVENT} if sc else {}, dt=dt, name=name, namespace=ns,
    )  # fmt: skip
    if thresholds == "equation":
        G.code = code  # sets alpha_e, beta_e, k_e (and _c)
    if sc:
        G.thresholder["calibration"].when, G.thresholder["calibration"].order = CAL_THRESHOLD_SLOT
        when, order = CAL_RESET_SLOT
        G.run_on_event("calibration", CALIBRATION_RESET, when=when, order=order)
    source = window_input if window_input is not None else "v_next"
    when, order = WINDOW_SLOT
    G.run_regularly(
        window_update(source, sc), dt=G.window_steps * dt, when=when, order=order, name=f"{name}_window"
    )
    when, order = THRESHOLD_UPDATE_SLOT
    update = threshold_update(thresholds, sc, code.T, n, tables)
    G.run_regularly(update, when=when, order=order, name=f"{name}_thresholds")
    return G


def integrating_layer(
    N: int,
    code: SCTTFSCode | TTFSCode | int,
    *,
    name: str | None = None,
    dt: b2.Quantity | None = None,
    unit: b2.Quantity | None = None,
    steps_per_code_step: int = 1,
) -> b2.NeuronGroup:
    """The output layer: it only integrates (eq. 16).

    At each window boundary (``code.T * steps_per_code_step`` steps, ``code`` being the code of
    the layer that feeds it or just its window length ``T``) the completed potential moves to
    ``v`` (the prediction is its argmax) and ``v_next`` restarts at ``b``; as in
    :func:`spiking_layer`, ``v + v_next`` at ``t = 0``. ``name`` defaults to
    ``"integrating_layer"``, ``"integrating_layer_1"``, ...; ``dt`` to ``defaultclock.dt``.
    """
    if isinstance(code, (SCTTFSCode, TTFSCode)):
        T = code.T
    elif isinstance(code, (int, np.integer)) and not isinstance(code, bool) and code >= 1:
        T = int(code)
    else:
        raise TypeError(f"code must be an SCTTFSCode, a TTFSCode or a window length T >= 1 (got {code!r})")
    dt = _check_dt(dt)
    dim = _dim(unit)
    n = _check_steps(steps_per_code_step)
    name = find_name(name if name is not None else "integrating_layer*")
    G = b2.NeuronGroup(N, f"v : {dim}\nv_next : {dim}\nb : {dim} (constant)", dt=dt, name=name)
    when, order = WINDOW_SLOT
    update = "v = v_next + int(timestep(t, dt) == 0) * v\nv_next = b"
    G.run_regularly(update, dt=T * n * dt, when=when, order=order, name=f"{name}_window")
    return G


def layer_synapses(
    pre: b2.NeuronGroup,
    post: b2.NeuronGroup,
    *,
    name: str | None = None,
    delay_steps: int = 0,
    weight: str = "w : 1",
) -> b2.Synapses:
    """Synapses decoding ``pre``'s spikes into ``post.v_next`` (eqs. 16-17).

    One Synapses object carries both pathways (``enc`` on the ``spike`` event, ``cal`` on the
    ``calibration`` event), so the connectivity is stored once. ``delay_steps`` (code steps;
    times ``pre.steps_per_code_step`` simulation steps) delays both (residual shortcuts are
    delayed by whole windows; the value decoded is the threshold at the emission step, which a
    delay of whole windows preserves). ``weight`` is the weight declaration (``"w : 1 (linked)"``
    to share conv kernels through an index). ``name`` defaults to ``"{pre}_to_{post}"``.
    """
    sc = "calibration" in pre.events
    on_pre = {"enc": ENCODING_PATHWAY}
    on_event = {"enc": "spike"}
    if sc:
        on_pre["cal"] = CALIBRATION_PATHWAY
        on_event["cal"] = "calibration"
    # always a scalar delay (0 included): without one, Brian2 gives every synapse its own
    # float64 delay per pathway (16 bytes per synapse here, and 4 more in each spike queue)
    steps = delay_steps * getattr(pre, "steps_per_code_step", 1)
    delay = {key: steps * pre.clock.dt for key in on_pre}
    name = find_name(name if name is not None else f"{pre.name}_to_{post.name}*")
    S = b2.Synapses(
        pre, post, weight, on_pre=on_pre, on_event=on_event, delay=delay, dt=pre.clock.dt, name=name
    )
    if sc:
        S.cal.when, S.cal.order = CAL_PATHWAY_SLOT
    return S


def encode_layer(
    v: Any,
    code: SCTTFSCode | TTFSCode,
    *,
    dt: b2.Quantity = 1 * b2.ms,
    unit: b2.Quantity | None = None,
    target: str = "numpy",
    return_monitors: bool = False,
    thresholds: str = "table",
    steps_per_code_step: int = 1,
):
    """Encode potentials ``v`` with one Brian2 layer in one run; returns ``(t_enc, t_cal)``.

    All neurons (any number, any shape of ``v``) are simulated in a single ``run`` of one window.
    The result is the same as :meth:`SCTTFSCode.spike_times` (int64 arrays of ``v``'s shape,
    ``-1`` = no spike), computed by Brian2 events instead of the reference loop. With
    ``steps_per_code_step=n`` (equation mode) the times are simulation steps, ``0 .. nT-1``:
    those of :func:`finer_time_code`.

    ``unit`` gives the potentials a unit (``v`` is then a Quantity of that dimension or plain
    numbers in that unit); ``target`` is ``"numpy"`` (default), ``"cython"`` or
    ``"cpp_standalone"``; ``thresholds`` as in :func:`spiking_layer`.
    """
    code = _check_code(code)
    if isinstance(v, b2.Quantity) and unit is not None:
        if not b2.have_same_dimensions(v, unit):
            raise b2.DimensionMismatchError(f"v must have the dimensions of unit={unit!r} (got {v!r})")
        v = np.asarray(v / unit)
    arr = np.asarray(as_potentials(v), dtype=np.float64)
    shape = arr.shape
    flat = arr.reshape(-1)
    if flat.size == 0:
        empty = np.full(shape, NO_SPIKE, dtype=np.int64)
        return empty, empty.copy()
    scale = 1.0 if unit is None else unit
    with use_target(target):
        G = spiking_layer(
            flat.size, code, name="encoder", dt=dt, unit=unit, thresholds=thresholds,
            steps_per_code_step=steps_per_code_step,
        )  # fmt: skip
        G.v = flat * scale
        mon = LayerMonitors.attach(G)
        net = b2.Network(G)
        net.run(G.window_duration, namespace={})
        W = G.window_steps
        t_enc = first_steps(mon.spikes, flat.size, dt, W)
        if mon.calibrations is not None:
            t_cal = first_steps(mon.calibrations, flat.size, dt, W)
        else:
            t_cal = np.full(flat.size, NO_SPIKE, dtype=np.int64)
    if return_monitors:
        return t_enc.reshape(shape), t_cal.reshape(shape), mon
    return t_enc.reshape(shape), t_cal.reshape(shape)
