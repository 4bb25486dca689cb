"""Fig. 2(b) of Feng et al. 2024: SC-TTFS neurons decoding in one window and encoding in the next.

The paper's Fig. 2(b) sketches the membrane potential of an SC-TTFS neuron against its encoding
and calibration thresholds, with the encoding and calibration spikes, and the pipelining of a
decoding phase and an encoding phase. Here the same picture comes from a Brian2 simulation of a
tiny two-layer network built with :mod:`scttfs_brian.brian.neurons` (CIFAR10 kernels of Table 1, T = 6):

* four presynaptic SC-TTFS neurons hold given values and encode them in window 0
  (steps 0-5); :func:`~scttfs_brian.brian.neurons.layer_synapses` connect them to
* three postsynaptic SC-TTFS neurons that decode those spikes into ``v_next`` during window 0
  (eqs. 16-17: ``w * theta_e(t_e)`` and ``w * theta_c(t_c)`` per spike) and encode the result in
  window 1 (steps 6-11).

Panels: (a) the presynaptic potentials ``v`` with the staircases theta_e(t), theta_c(t) of
eq. 14, spikes marked on the threshold they crossed; (b) the raster of both layers (``|``
encoding, ``x`` calibration); (c) the postsynaptic decoding accumulator ``v_next`` in window 0
and the potential ``v`` it hands to the encoding window 1; (d) decoded values against the true
(analog) potentials, with the response ``code.quantize`` of the code.

Recording times (see the scheduling table in :mod:`scttfs_brian.brian.equations`): ``v`` is recorded
with ``when="thresholds", order=-1``, i.e. after the window boundary and threshold update at
``before_start`` and before the encoding check, so the value drawn over step ``t`` is exactly the one
compared with theta_e(t) (a calibration at the same step sees it minus theta_e(t));
``v_next`` is recorded at ``when="end"``, after the step's synaptic input. (The window boundary
runs at ``before_start``, so a default StateMonitor at ``start`` records the same ``v``.)

What differs from the paper: real simulated traces rather than a sketch; time is in ms with one
code step per ms; the postsynaptic layer's own encoding in window 0 is of its initial potential 0
(silent), and the presynaptic layer is silent in window 1.

Run: ``python figures/fig2_neuron_dynamics.py`` (writes ``figures/out/fig2_neuron_dynamics.{png,pdf}``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import brian2 as b2
import numpy as np
from matplotlib.figure import Figure

from scttfs_brian import PRESETS, SCTTFSCode
from scttfs_brian.brian.devices import use_target
from scttfs_brian.brian.neurons import LayerMonitors, layer_synapses, spike_steps, spiking_layer
from scttfs_brian.brian.plotting import plot_membrane, plot_raster, plot_response, save_figure

OUT = Path(__file__).resolve().parent / "out"

#: Values the presynaptic neurons encode in window 0.
PRE_VALUES = np.array([2.2, 0.9, 0.45, 0.12])
#: Weights, shape (post, pre).
WEIGHTS = np.array([[0.5, 0.8, -0.3, 1.0], [0.2, -0.4, 1.2, 0.9], [-0.1, 0.6, 0.5, 2.0]])


def simulate(code: SCTTFSCode, values: np.ndarray = PRE_VALUES, weights: np.ndarray = WEIGHTS) -> dict:
    """Run the two-layer network for two windows; returns the monitors' data as arrays."""
    T = code.T
    n_post, n_pre = weights.shape
    with use_target("numpy"):
        pre = spiking_layer(n_pre, code, name="pre", dt=1 * b2.ms)
        post = spiking_layer(n_post, code, name="post", dt=1 * b2.ms)
        pre.v_next = values  # moved to v at the window boundary of step 0
        syn = layer_synapses(pre, post, name="pre_to_post")
        i, j = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="ij")
        syn.connect(i=i.ravel(), j=j.ravel())
        syn.w = weights[j.ravel(), i.ravel()]
        mon_pre = LayerMonitors.attach(pre)
        mon_post = LayerMonitors.attach(post)
        v_pre = b2.StateMonitor(pre, "v", record=True, when="thresholds", order=-1, name="pre_v")
        v_post = b2.StateMonitor(post, "v", record=True, when="thresholds", order=-1, name="post_v")
        vnext_post = b2.StateMonitor(post, "v_next", record=True, when="end", name="post_v_next")
        net = b2.Network(pre, post, syn, *mon_pre.objects, *mon_post.objects, v_pre, v_post, vnext_post)
        net.run(2 * T * pre.clock.dt, namespace={})
    return {
        "mon_pre": mon_pre,
        "mon_post": mon_post,
        "v_pre": v_pre,
        "v_post": v_post,
        "vnext_post": vnext_post,
    }


def _times(monitors: LayerMonitors, n: int, window: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(t_enc, t_cal) per neuron in one window, -1 where absent."""
    out = []
    for mon in (monitors.spikes, monitors.calibrations):
        t = np.full(n, -1, dtype=np.int64)
        w, step = spike_steps(mon.t[:], mon.clock.dt, T)
        keep = w == window
        t[np.asarray(mon.i[:])[keep]] = step[keep]
        out.append(t)
    return out[0], out[1]


def main(outdir: str | Path = OUT, T: int = 6) -> list[Path]:
    enc, cal = PRESETS["cifar10"]
    code = SCTTFSCode(T, enc, cal)
    run = simulate(code)
    n_post, n_pre = WEIGHTS.shape

    # what the spikes say, window by window, against the reference rule of coding.py
    te_pre, tc_pre = _times(run["mon_pre"], n_pre, 0, T)
    z_pre = code.decode(te_pre, tc_pre)
    decoded_input = np.asarray(run["vnext_post"].v_next[:, T - 1])  # end of the decoding window
    te_post, tc_post = _times(run["mon_post"], n_post, 1, T)
    z_post = code.decode(te_post, tc_post)
    agree = (
        np.array_equal(np.stack([te_pre, tc_pre]), np.stack(code.spike_times(PRE_VALUES)))
        and np.allclose(decoded_input, WEIGHTS @ code.quantize(PRE_VALUES), rtol=1e-12, atol=1e-12)
        and np.array_equal(np.stack([te_post, tc_post]), np.stack(code.spike_times(decoded_input)))
    )

    fig = Figure(figsize=(12, 8), layout="constrained")
    (ax_a, ax_b), (ax_c, ax_d) = fig.subplots(2, 2)

    plot_membrane(
        run["v_pre"], code, range(n_pre), ax_a, windows=[0],
        spike_monitor=run["mon_pre"].spikes, calibration_monitor=run["mon_pre"].calibrations,
    )  # fmt: skip
    ax_a.set_xlim(0, T)
    ax_a.set_title("(a) presynaptic layer encodes in window 0")
    ax_a.legend(fontsize=7, ncol=2)

    plot_raster(run["mon_pre"].spikes, run["mon_pre"].calibrations, ax_b, label="pre")
    plot_raster(run["mon_post"].spikes, run["mon_post"].calibrations, ax_b, offset=n_pre, label="post",
                color="C0")  # fmt: skip
    ax_b.set_yticks(
        range(n_pre + n_post), [f"pre {k}" for k in range(n_pre)] + [f"post {k}" for k in range(n_post)]
    )
    ax_b.set_ylabel("")
    ax_b.set_title("(b) raster: window 0 (pre encodes) | window 1 (post encodes)")
    ax_b.legend(fontsize=7, loc="lower right")

    plot_membrane(run["vnext_post"], code, range(n_post), ax_c, variable="v_next", thresholds=False,
                  linestyle="-.", linewidth=1.0)  # fmt: skip
    plot_membrane(
        run["v_post"], code, range(n_post), ax_c, windows=[1],
        spike_monitor=run["mon_post"].spikes, calibration_monitor=run["mon_post"].calibrations, linewidth=2.0,
    )  # fmt: skip
    ax_c.set_ylabel("potential")
    ax_c.set_title("(c) postsynaptic: decode into v_next (window 0), encode v (window 1)")
    ax_c.legend(fontsize=7, ncol=2)

    vmax = 1.15 * max(PRE_VALUES.max(), (WEIGHTS @ PRE_VALUES).max())
    plot_response(code, vmax, ax_d, color="0.6", linewidth=1.0, label="code.quantize(v)")
    ax_d.plot(PRE_VALUES, z_pre, "o", color="C0", label="pre: decoded from Brian2 spikes")
    ax_d.plot(decoded_input, z_post, "s", color="C3", label="post: decoded from Brian2 spikes")
    true_post = WEIGHTS @ PRE_VALUES
    ax_d.plot(true_post, z_post, "^", color="C2", markerfacecolor="none",
              label="post: sent value vs the ANN's W a (arrow: layer-0 quantization)")  # fmt: skip
    for k in range(n_post):
        ax_d.annotate("", (true_post[k], z_post[k]), (decoded_input[k], z_post[k]),
                      arrowprops={"arrowstyle": "<-", "color": "C2", "linewidth": 0.8})  # fmt: skip
    ax_d.set_xlim(0, vmax)
    ax_d.set_ylim(0, vmax)
    ax_d.set_xlabel("true potential (value the neuron should send)")
    ax_d.set_title(f"(d) decoded vs true; Brian2 == code.spike_times: {agree}")
    ax_d.legend(fontsize=7, loc="upper left")

    fig.suptitle(f"SC-TTFS neuron dynamics in Brian2 (cf. Fig. 2(b)); CIFAR10 kernels, T = {T}")
    print(
        f"pre values {PRE_VALUES} -> (t_enc, t_cal) = {list(zip(te_pre.tolist(), tc_pre.tolist(), strict=True))}, decoded {np.round(z_pre, 4)}"
    )
    print(f"post true W a {np.round(true_post, 4)}, decoded input {np.round(decoded_input, 4)}, "
          f"sent {np.round(z_post, 4)}; Brian2 agrees with coding.py: {agree}")  # fmt: skip
    return save_figure(fig, outdir, "fig2_neuron_dynamics")


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else OUT):
        print(path)
