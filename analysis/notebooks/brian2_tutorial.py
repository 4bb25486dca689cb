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
# # SC-TTFS neurons in your own Brian2 script
#
# An SC-TTFS neuron (Feng et al. 2024) encodes its membrane potential `v` in a window of `T` code
# steps with at most two spikes: an **encoding spike** at the first step `t` with
# `v >= theta_e(t)` (then `v -= theta_e(t)`), and a **calibration spike** at the first step (the
# same one included) with `v >= theta_c(t)` (then silence). The thresholds decay (eq. 14):
# `theta(t) = alpha * exp(-k t + beta)`. A receiving neuron adds `w * theta_e(t_enc)` and
# `w * theta_c(t_cal)`: the value sent is `z = theta_e(t_enc) + theta_c(t_cal)`.
#
# `scttfs_brian.brian.neurons.spiking_layer` returns an ordinary `NeuronGroup` with that rule.
# This notebook uses it as a Brian2 user would: own groups, own monitors, plain `run()`.
#
# 1. one layer: set `G.v`, run, read the spikes;
# 2. the window: `v` and `v_next`, and where to put monitors;
# 3. inside a network: Poisson input -> SC-TTFS -> LIF readout;
# 4. equation mode: eq. 14 in the model, `alpha`/`beta`/`k` as Brian2 variables, per neuron;
# 5. finer time: several simulation steps per code step (more in `finer_time.py`).

# %%
import matplotlib.pyplot as plt
import numpy as np
from brian2 import (
    EventMonitor,
    Hz,
    NeuronGroup,
    PoissonGroup,
    SpikeMonitor,
    StateMonitor,
    Synapses,
    defaultclock,
    ms,
    prefs,
    restore,
    run,
    start_scope,
    store,
)

from scttfs_brian import PRESETS, SCTTFSCode
from scttfs_brian.brian.neurons import finer_time_code, spiking_layer
from scttfs_brian.brian.plotting import plot_membrane, plot_raster

prefs.codegen.target = "numpy"  # short runs: no compilation
defaultclock.dt = 1 * ms  # one code step per ms; layers take defaultclock.dt unless given a dt
code = SCTTFSCode(T=6, encode=PRESETS["cifar10"][0], calibrate=PRESETS["cifar10"][1])  # Table 1, CIFAR10
print(code.encode, code.calibrate, sep="\n")

# %% [markdown]
# ## 1. One layer: `G.v = x`, `run()`
#
# A layer keeps Brian2's conventions: the name is optional, the step is the group's `dt`
# (default 1 ms), and a window lasts `G.window_duration = T * dt`. The group's `spike` event is
# the encoding spike, its custom event `calibration` the calibration spike; a default
# `EventMonitor(G, "calibration")` is scheduled right after the calibration check.

# %%
start_scope()
x = np.array([2.2, 0.9, 0.45, 0.12, 0.03, -0.3])
G = spiking_layer(len(x), code)
G.v = x
spikes = SpikeMonitor(G)
calibrations = EventMonitor(G, "calibration")
state = StateMonitor(G, "v", record=True)
thresholds = StateMonitor(G, ("theta_e", "theta_c"), record=0)  # shared: one neuron is enough
run(G.window_duration)


def first_steps(monitor, N, steps_per_window):
    """Step inside the window of each neuron's first event (-1: none)."""
    out = np.full(N, -1)
    steps = np.round(monitor.t / monitor.clock.dt).astype(int) % steps_per_window
    out[monitor.i[::-1]] = steps[::-1]
    return out


t_enc, t_cal = first_steps(spikes, len(x), G.window_steps), first_steps(calibrations, len(x), G.window_steps)
ref_enc, ref_cal = code.spike_times(x)
print(" v      t_enc t_cal  (code.spike_times)  decoded z")
for k in range(len(x)):
    z = code.decode(np.array([t_enc[k]]), np.array([t_cal[k]]))[0]
    print(f"{x[k]:5.2f}  {t_enc[k]:5d} {t_cal[k]:5d}   ({ref_enc[k]:2d}, {ref_cal[k]:2d})          {z:.4f}")
assert np.array_equal(t_enc, ref_enc) and np.array_equal(t_cal, ref_cal)
assert np.array_equal(thresholds.theta_e[0], code.table_e)  # the monitor sees this step's threshold

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
plot_membrane(state, neurons=[0, 1, 2, 3], axes=ax1, spike_monitor=spikes, calibration_monitor=calibrations)
ax1.legend(fontsize=7, ncol=2)
ax1.set_title("potential against the thresholds (eq. 14)")
plot_raster(spikes, calibrations, ax2)
ax2.legend(fontsize=7)
ax2.set_title("raster")

# %% [markdown]
# Each neuron's spikes are drawn in the colour of its trace, on the threshold they crossed:
# `o` encoding, `x` calibration. The potential drops by `theta_e(t_enc)` at the encoding spike
# and to 0 at the calibration spike.
#
# ## 2. The window: `v` encodes, `v_next` decodes
#
# A layer encodes `v` during a window while it decodes its input into `v_next`; at the next
# window boundary `v <- v_next` and `v_next <- b` (the bias). Layers are thus pipelined: a layer
# encodes in window `w + 1` what it received in window `w`. At `t = 0` there is no previous
# window and the layer encodes `v + v_next`, so both `G.v = x` and `G.v_next = x` work before
# the first `run()`.
#
# | slot | what runs |
# |---|---|
# | `before_start` | window boundary (`v <- v_next`, `v_next <- b`), then this step's `theta_e`, `theta_c` |
# | `start` | **a default `StateMonitor`**: sees `v` and the thresholds this step compares |
# | `thresholds` | encoding spike `v >= theta_e`; default `SpikeMonitor` |
# | `synapses` | encoding pathway of `layer_synapses`: `v_next_post += w * theta_e_pre` |
# | `resets` | encoding reset, then calibration check (order 1), its monitor and pathway (2), reset (3) |
# | `end` | a `StateMonitor(..., when="end")`: `v` after the resets, `v_next` with this step's input |
#
# So: record `v`, `theta_e`, `theta_c` with the default schedule, and `v_next` with
# `when="end"` (its value at the last step of a window is what the layer encodes next).

# %% [markdown]
# ## 3. Inside an ordinary Brian2 network: Poisson -> SC-TTFS -> LIF
#
# Poisson spikes are decoded into `v_next` with a plain `Synapses` (`v_next_post += w`); the
# SC-TTFS layer's encoding and calibration spikes drive a leaky integrate-and-fire readout with
# the value each spike carries. Every object is a Brian2 object in this namespace, so `run()`
# collects them all.

# %%
start_scope()
T = code.T
inputs = PoissonGroup(40, rates=250 * Hz)
layer = spiking_layer(12, code)
feed = Synapses(inputs, layer, "w : 1", on_pre="v_next_post += w")
feed.connect(p=0.3)
feed.w = "0.01 + 0.03 * rand()"
readout = NeuronGroup(1, "dv/dt = -v / (10*ms) : 1", threshold="v > 0.3", reset="v = 0", method="exact")
drive = Synapses(
    layer,
    readout,
    on_pre={"enc": "v_post += 0.2 * theta_e_pre", "cal": "v_post += 0.2 * theta_c_pre"},
    on_event={"enc": "spike", "cal": "calibration"},
)
drive.connect()
layer_spikes = SpikeMonitor(layer)
layer_cal = EventMonitor(layer, "calibration")
decoded = StateMonitor(layer, "v_next", record=True, when="end")
readout_v = StateMonitor(readout, "v", record=0)
readout_spikes = SpikeMonitor(readout)
n_windows = 4
run(n_windows * layer.window_duration)

# check: in window w + 1 the layer encodes exactly what it decoded in window w
agree = []
for w in range(n_windows - 1):
    received = decoded.v_next[:, (w + 1) * T - 1]
    in_window = (layer_spikes.t >= (w + 1) * T * ms) & (layer_spikes.t < (w + 2) * T * ms)
    got = np.full(len(layer), -1)
    got[layer_spikes.i[in_window]] = np.round(layer_spikes.t[in_window] / ms).astype(int) - (w + 1) * T
    agree.append(np.array_equal(got, code.spike_times(received)[0]))
print("windows 1..3 encode what windows 0..2 decoded:", agree)
assert all(agree)

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
plot_raster(layer_spikes, layer_cal, ax1)
ax1.legend(fontsize=7, loc="upper right")
ax2.plot(readout_v.t / ms, readout_v.v[0], color="C0")
ax2.plot(readout_spikes.t / ms, np.full(readout_spikes.num_spikes, 0.32), "v", color="C0")
ax2.set_xlabel("time (ms)")
ax2.set_ylabel("LIF readout v")

# %% [markdown]
# ## 4. Equation mode: eq. 14 in the model
#
# By default (`thresholds="table"`) the thresholds are read from the code's table: exact
# against `code.spike_times` on every target. With `thresholds="equation"` the model computes
# `theta_e = alpha_e * exp(-k_e * t + beta_e)` (and `theta_c`) from Brian2 variables of the
# group: shared by default, one per neuron with `kernels="per_neuron"`. On the numpy target the
# spikes are those of the table (same `exp`); compiled targets use the C library's `exp`, which
# can differ by one ulp, so a potential lying exactly on a threshold may spike one step apart.
#
# `G.code` follows the variables. In table mode assigning `G.code` is refused: it would change
# nothing in the simulation.

# %%
start_scope()
N = 8
v0 = 0.3
G = spiking_layer(N, code, thresholds="equation", kernels="per_neuron")
print("alpha_e:", G.alpha_e[:2], "... k_e:", G.k_e[:2], "...")
G.k_e = np.linspace(0.4, 1.6, N)  # one decay rate per neuron
G.v = v0
spikes = SpikeMonitor(G)
calibrations = EventMonitor(G, "calibration")
state = StateMonitor(G, "v", record=True)
store()
run(G.window_duration)
t_enc = first_steps(spikes, N, G.window_steps)
for i in range(N):
    assert t_enc[i] == G.code_of(i).spike_times(np.array([v0]))[0][0]
print("k_e      :", np.round(G.k_e[:], 2))
print("t_enc    :", t_enc)
print("decoded z:", np.round([G.code_of(i).quantize(np.array([v0]))[0] for i in range(N)], 4))

fig, ax = plt.subplots(figsize=(7, 3.8))
plot_membrane(state, neurons=[0, 3, 7], axes=ax, spike_monitor=spikes, calibration_monitor=calibrations)
ax.set_title("per-neuron kernels: each neuron's threshold in its colour")
ax.legend(fontsize=7, ncol=2)

# the same network with a shared change: restore, set, run again
restore()
G.k_e = 0.8
G.alpha_c = 0.5
run(G.window_duration)
print("after G.k_e = 0.8, G.alpha_c = 0.5: G.code =", G.code)

table_layer = spiking_layer(2, code)
try:
    table_layer.code = SCTTFSCode(6, *PRESETS["cifar100"])
except AttributeError as err:
    print("table mode:", err)

# %% [markdown]
# ## 5. Finer time: `steps_per_code_step=n`
#
# In equation mode a code step can span `n` simulation steps: the thresholds decay between code
# steps (`t = s / n`), spikes fall between them and carry the threshold at their time. The layer
# then implements `finer_time_code(code, n)`: `n T` steps and kernels `k / n`. As `n` grows the
# decoded value approaches the potential itself (the continuous-time code). `layer_synapses` and
# `integrating_layer` take the same `steps_per_code_step`, so whole networks run on finer time.

# %%
start_scope()
x = np.array([2.2, 0.9, 0.45, 0.12])
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, n in zip(axes, (1, 4, 16)):
    G = spiking_layer(len(x), code, thresholds="equation", steps_per_code_step=n, dt=1 * ms / n)
    G.v = x
    spikes = SpikeMonitor(G)
    calibrations = EventMonitor(G, "calibration")
    state = StateMonitor(G, "v", record=True)
    run(G.window_duration)
    fine = finer_time_code(code, n)
    t_enc = first_steps(spikes, len(x), G.window_steps)
    t_cal = first_steps(calibrations, len(x), G.window_steps)
    assert np.array_equal(t_enc, fine.spike_times(x)[0]) and np.array_equal(t_cal, fine.spike_times(x)[1])
    z = fine.decode(t_enc, t_cal)
    print(f"n = {n:2d}: decoded {np.round(z, 4)}, |x - z| = {np.round(np.abs(x - z), 4)}")
    plot_membrane(state, axes=ax, spike_monitor=spikes, calibration_monitor=calibrations)
    ax.set_title(f"n = {n} (dt = 1 ms / {n})")
axes[0].legend(fontsize=6, ncol=2)

# %% [markdown]
# With `dt = 1 ms / n` the window keeps its duration (6 ms) while the decisions become finer.
# How the error of eqs. 18-19 shrinks with `n` for both codes, and what it costs, is measured in
# `finer_time.py`.
#
# ## Recap
#
# * `G = spiking_layer(N, code)` is a `NeuronGroup`; set `G.v` (or `G.v_next`) and `run()`.
# * Monitors: default `SpikeMonitor(G)`, `EventMonitor(G, "calibration")`,
#   `StateMonitor(G, ("v", "theta_e"))`; `v_next` with `when="end"`. `LayerMonitors.attach(G)`
#   makes the first two and attaches them to `G`, so `run()` sees them too.
# * `thresholds="equation"` puts eq. 14 in the model (`alpha_e`, ..., `k_c` variables;
#   `kernels="per_neuron"`), and `steps_per_code_step=n` runs it on finer time.
