r"""The SC-TTFS neuron as Brian2 model strings (eqs. 9-14), and where each part runs in a step.

An SC-TTFS layer is one :class:`~brian2.NeuronGroup`. Its variables:

==================  ==========================================================================
``v``               the potential encoded in the current window (eqs. 9-13)
``v_next``          the decoding accumulator (eqs. 16-17): what the layer encodes next window
``b``               the bias, added once at the start of each decoding window
``enc_done``        this window's encoding spike happened (``cal_done``: the calibration spike)
``theta_e``         this step's encoding threshold :math:`\theta_e(t)` (``theta_c``: calibration)
``alpha_e`` ...     equation mode only: ``alpha_e, beta_e, k_e, alpha_c, beta_c, k_c`` of eq. 14,
                    shared by the group (default) or one per neuron
==================  ==========================================================================

Two ways to get the thresholds (``thresholds=`` of :func:`~.neurons.spiking_layer`):

* ``"table"`` (default): ``theta_e`` is read each step from the code's float64 table
  (``code.table_e``) through a :class:`~brian2.TimedArray`, so the decisions are exactly those of
  :meth:`SCTTFSCode.spike_times` on every target.
* ``"equation"``: eq. 14 is in the model,
  ``theta_e = alpha_e * exp(-k_e * t_code + beta_e)``, with ``t_code`` the time inside the window
  in code steps (``(timestep(t, dt) % (T*n)) / n`` for ``n`` simulation steps per code step).
  With ``n = 1`` this is the table's own expression; the numpy target evaluates it with the same
  ``exp`` as the table, so the spikes are the same. Compiled targets (cython, C++) call the C
  library's ``exp``, which can differ from numpy's by one ulp: a potential lying *exactly* on a
  threshold (``v == theta_e(t)`` to the last bit) may then spike one step apart. Only such
  boundary ties can differ; random potentials hit one with probability ~0.

Schedule inside one time step of ``dt`` (Brian2 runs ``before_start`` before every object at
``start``, whatever the names, so a default :class:`~brian2.StateMonitor` records the potential
and the thresholds this step's decisions use):

========================  ===============================================================
``before_start`` order 0  window boundary (every ``T`` code steps): ``v <- v_next``
                          (``v <- v + v_next`` at ``t = 0``, so ``G.v = x`` before a run
                          is encoded), ``v_next <- b``, the ``*_done`` flags cleared
``before_start`` order 1  this step's thresholds ``theta_e``, ``theta_c``
``thresholds``            encoding spike: ``not enc_done and v >= theta_e``
``synapses``              encoding pathway: ``v_next_post += w * theta_e_pre``
``resets`` order 0        encoding reset: ``v = v - theta_e`` (eq. 11, subtractive)
``resets`` order 1        calibration check, *after* the encoding reset, so ``t_cal == t_enc``
                          when the residual allows it (Brian2 checks custom events before resets
                          by default, which would see the un-reset potential)
``resets`` order 2        calibration pathway (``v_next_post += w * theta_c_pre``) and the
                          calibration monitor of :class:`~.monitors.LayerMonitors`
``resets`` order 3        calibration reset: ``v = 0``, silent for the rest of the window
========================  ===============================================================
"""

from __future__ import annotations

__all__ = [
    "THRESHOLD_MODES",
    "KERNEL_SCOPES",
    "WINDOW_SLOT",
    "THRESHOLD_UPDATE_SLOT",
    "CAL_THRESHOLD_SLOT",
    "CAL_PATHWAY_SLOT",
    "CAL_RESET_SLOT",
    "ENCODING_THRESHOLD",
    "ENCODING_RESET",
    "CALIBRATION_EVENT",
    "CALIBRATION_RESET",
    "ENCODING_PATHWAY",
    "CALIBRATION_PATHWAY",
    "KERNEL_PARAMETERS",
    "code_time",
    "spiking_model",
    "threshold_update",
    "window_update",
]

#: ``thresholds=`` values of :func:`~.neurons.spiking_layer`.
THRESHOLD_MODES = ("table", "equation")
#: ``kernels=`` values: eq. 14's parameters shared by the group or one per neuron.
KERNEL_SCOPES = ("shared", "per_neuron")

#: ``(when, order)`` of the window boundary: before any object scheduled at ``start``.
WINDOW_SLOT = ("before_start", 0)
#: ``(when, order)`` of this step's threshold computation.
THRESHOLD_UPDATE_SLOT = ("before_start", 1)
#: ``(when, order)`` of the calibration check (after the encoding reset at ``resets``, 0).
CAL_THRESHOLD_SLOT = ("resets", 1)
#: ``(when, order)`` of the calibration pathway and of the calibration monitor.
CAL_PATHWAY_SLOT = ("resets", 2)
#: ``(when, order)`` of the calibration reset.
CAL_RESET_SLOT = ("resets", 3)

#: Encoding spike (eqs. 9-10): the first step with ``v >= theta_e`` in the window.
ENCODING_THRESHOLD = "not enc_done and v >= theta_e"
#: Encoding reset (eq. 11, subtractive).
ENCODING_RESET = "v = v - theta_e\nenc_done = True"
#: Calibration spike (eq. 12): after the encoding spike (same step allowed), ``v >= theta_c``.
CALIBRATION_EVENT = "enc_done and not cal_done and v >= theta_c"
#: Calibration reset (eq. 13): silent for the rest of the window.
CALIBRATION_RESET = "v = 0*v\ncal_done = True"
#: Decoding (eq. 16): the value an encoding spike carries.
ENCODING_PATHWAY = "v_next_post += w * theta_e_pre"
#: Decoding (eq. 17): the value a calibration spike carries.
CALIBRATION_PATHWAY = "v_next_post += w * theta_c_pre"

#: Eq. 14's parameters of each kernel, as Brian2 variables of the group (equation mode).
KERNEL_PARAMETERS = {"e": ("alpha_e", "beta_e", "k_e"), "c": ("alpha_c", "beta_c", "k_c")}


def code_time(T: int, steps_per_code_step: int = 1) -> str:
    """Brian2 expression of the time inside the window in code steps (eq. 14's ``t``).

    ``n = steps_per_code_step`` simulation steps make one code step: the window is ``T * n``
    steps and the time is ``(timestep % (T n)) / n``. For ``n = 1`` the expression is the
    integer step itself (the table's ``np.arange(T)``, exactly).
    """
    if steps_per_code_step == 1:
        return f"(timestep(t, dt) % {T})"
    return f"(1.0 * (timestep(t, dt) % {T * steps_per_code_step}) / {steps_per_code_step})"


def spiking_model(dim: str, calibration: bool, thresholds: str, kernels: str) -> str:
    """The model equations of a spiking layer (the variables of the module docstring).

    ``dim`` is the Brian2 unit name of the potentials (``"1"``: dimensionless).
    """
    flag = " (shared)" if thresholds == "table" or kernels == "shared" else ""
    param_flag = " (shared, constant)" if kernels == "shared" else " (constant)"
    lines = [f"v : {dim}", f"v_next : {dim}", f"b : {dim} (constant)", "enc_done : boolean"]
    for kind in ("e", "c") if calibration else ("e",):
        lines.append(f"theta_{kind} : {dim}{flag}")
        if thresholds == "equation":
            alpha, beta, k = KERNEL_PARAMETERS[kind]
            lines += [f"{alpha} : {dim}{param_flag}", f"{beta} : 1{param_flag}", f"{k} : 1{param_flag}"]
    if calibration:
        lines.append("cal_done : boolean")
    return "\n".join(lines)


def threshold_update(
    thresholds: str, calibration: bool, T: int, steps_per_code_step: int, tables: dict[str, str]
) -> str:
    """The statements that set this step's ``theta_e`` (and ``theta_c``).

    ``"table"``: read from the TimedArrays named in ``tables`` (``{"e": name, "c": name}``);
    ``"equation"``: eq. 14 from the group's ``alpha``, ``beta``, ``k`` and :func:`code_time`.
    """
    t_code = code_time(T, steps_per_code_step)
    lines = []
    for kind in ("e", "c") if calibration else ("e",):
        if thresholds == "table":
            lines.append(f"theta_{kind} = {tables[kind]}({t_code} * dt)")
        else:
            alpha, beta, k = KERNEL_PARAMETERS[kind]
            lines.append(f"theta_{kind} = {alpha} * exp(-{k} * {t_code} + {beta})")
    return "\n".join(lines)


def window_update(source: str, calibration: bool) -> str:
    """The window boundary: encode what was decoded (``source``, ``v_next`` by default).

    At ``t = 0`` there is no previous window: the layer encodes ``source + v``, so a potential
    set with ``G.v = x`` before the run is encoded (with ``v_next`` and ``v`` both 0 by default,
    either assignment works; ``x + 0`` is ``x`` exactly).
    """
    lines = [f"v = {source} + int(timestep(t, dt) == 0) * v", "v_next = b", "enc_done = False"]
    if calibration:
        lines.append("cal_done = False")
    return "\n".join(lines)
