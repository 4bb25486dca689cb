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
# # Finer time: the error of eqs. 18-19 as simulation steps per code step grow
#
# A code step of the paper is one decision of the neuron. In Brian2's equation mode a layer can
# run `n` simulation steps per code step (`spiking_layer(..., thresholds="equation",
# steps_per_code_step=n)`): eq. 14 is sampled at `t = s / n`, so spikes fall between code
# steps and carry the threshold at their time. Such a layer implements
# `finer_time_code(code, n)`: `n T` steps with kernels `k / n`. As `n` grows both codes
# approach their continuous-time limit (the curves of the paper's Fig. 1):
#
# * TTFS: a neuron in range fires when the threshold has decayed to its potential, `z -> a`,
#   so the quantization term `e_q` vanishes;
# * SC-TTFS: the encoding spike alone already sends `a`; the residual left for the calibration
#   spike vanishes with it;
# * the clip terms do not vanish: the top of the range, `theta_e(0)` (TTFS) or
#   `theta_e(0) + theta_c(0)` (SC-TTFS), does not depend on `n`, and the bottom tends to
#   `theta_e(T)`, the threshold at the end of the window.
#
# Below: the terms of eqs. 18-19 (realized, and as the paper writes them) against `n` on one
# activation sample, the Brian2 layer checked against the finer code, and what finer time costs.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from scttfs_brian import PRESETS, SCTTFSCode, TTFSCode
from scttfs_brian.analysis import Table, energy, error_bounds, error_decomposition, synthetic_activations
from scttfs_brian.brian.neurons import encode_layer, finer_time_code

T = 6
enc, cal = PRESETS["cifar10"]
codes = {"TTFS": TTFSCode(T, enc), "SC-TTFS": SCTTFSCode(T, enc, cal)}
a = synthetic_activations("half-normal", 20_000, scale=0.5, seed=0)
NS = (1, 2, 4, 8, 16, 32, 64)
print(f"{a.size} half-normal activations, mean {a.mean():.3f}; CIFAR10 kernels of Table 1, T = {T}")

# %% [markdown]
# ## The terms of eqs. 18-19 against `n`
#
# Mean per neuron of each term (`error_decomposition`: realized `|ReLU(a) - z|` on the paper's
# partition of the neurons; `error_bounds`: the quantization term as eqs. 18-19 write it).

# %%
rows = []
for name, code in codes.items():
    for n in NS:
        fine = finer_time_code(code, n)
        terms = error_decomposition(a, fine)
        bound = error_bounds(a, fine)
        rows.append(
            (name, n, n * T, fine.min_value, terms.e_c_min / a.size, terms.e_q / a.size,
             bound.quantization / a.size, terms.e_c_max / a.size, terms.mean)
        )  # fmt: skip
table = Table(
    (
        "code",
        "n",
        "steps/window",
        "min value",
        "e_c,min",
        "e_q",
        "e_q bound (eqs. 18-19)",
        "e_c,max",
        "total",
    ),
    rows,
)
print(table.to_markdown())

# the continuous-time limit of the clip terms: silent below theta_e(T), clipped above the top
limit_low = {name: a[a < enc(np.array([float(T)]))[0]].sum() / a.size for name in codes}
print("continuous-time limit of e_c,min:", {k: round(v, 5) for k, v in limit_low.items()})

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, name in zip(axes, codes):
    sel = [r for r in rows if r[0] == name]
    n_axis = [r[1] for r in sel]
    ax.loglog(n_axis, [r[5] for r in sel], "o-", label="e_q (realized)")
    ax.loglog(n_axis, [r[6] for r in sel], "s--", label="e_q bound (as written)")
    ax.loglog(n_axis, [r[4] for r in sel], "^-", label="e_c,min")
    ax.axhline(limit_low[name], color="C2", linestyle=":", label="e_c,min limit (silent below theta_e(T))")
    ax.loglog(n_axis, [r[8] for r in sel], "k-", label="total")
    ax.set_xlabel("simulation steps per code step n")
    ax.set_ylabel("mean error per neuron")
    ax.set_title(f"{name}, T = {T}")
axes[0].legend(fontsize=7)

# %% [markdown]
# * TTFS: `e_q` falls as `1/n`: the step between successive thresholds is
#   `theta(t) (1 - exp(-k/n))`, about `k theta(t) / n`; so does the paper's bound (eq. 18).
# * SC-TTFS starts far lower (the calibration spike sends the residual) and falls faster at
#   first, then flattens onto the TTFS curve: once the residual of the encoding spike (below one
#   fine step) is smaller than the lowest calibration threshold `theta_c(T)`, the calibration
#   spike no longer fires (fewer spikes per neuron, below) and the code is TTFS-like in range.
#   In the continuous-time limit the calibration spike has nothing left to correct.
# * Eq. 19 as written does not shrink: for a neuron encoding at step 0 (`a > theta_e(0)`) its
#   quantization term is `theta_c(0) - theta_c(t_c)` (the bound takes the top of the range for
#   `s^e(-1)`, see `scttfs_brian.analysis.bounds`), whatever `n`.
# * What remains at large `n` is clipping: `e_c,min` settles at its continuous-time limit, and
#   TTFS keeps its upper clip `e_c,max` (its range ends at `theta_e(0)`); SC-TTFS's range reaches
#   `theta_e(0) + theta_c(0)`.
#
# ## The Brian2 layer implements the finer code, at `n` times the steps
#
# One SC-TTFS (and one TTFS) layer in equation mode with the window kept at 6 ms
# (`dt = 1 ms / n`), fed the activations: its spike steps are those of
# `finer_time_code(code, n)` (`encode_layer` runs one window). Then the simulation time per
# window, from a layer that encodes the activations in every window (`b = a`): the time of
# about 4000 steps less that of one window, so that the fixed cost of a `run()` call cancels
# (the machine's load still adds noise).

# %%
from brian2 import Network, ms, prefs  # noqa: E402

from scttfs_brian.brian.neurons import spiking_layer  # noqa: E402

prefs.codegen.target = "numpy"


def timed_run(net, duration):
    start = time.perf_counter()
    net.run(duration)
    return time.perf_counter() - start


cost = []
for name, code in codes.items():
    for n in (1, 4, 16, 64):
        t_enc, t_cal = encode_layer(a, code, thresholds="equation", steps_per_code_step=n)
        ref_enc, ref_cal = finer_time_code(code, n).spike_times(a)
        mismatches = int(np.sum((t_enc != ref_enc) | (t_cal != ref_cal)))
        assert mismatches == 0
        G = spiking_layer(a.size, code, thresholds="equation", steps_per_code_step=n, dt=1 * ms / n)
        G.b = a  # every window encodes the activations
        net = Network(G)
        net.run(G.window_duration)  # code generation
        one = timed_run(net, G.window_duration)
        windows = 1 + -(-4000 // (n * T))
        many = timed_run(net, windows * G.window_duration)
        per_step = (many - one) / ((windows - 1) * n * T)
        cost.append((name, n, n * T, mismatches, per_step * n * T * 1e3, per_step * 1e6))
print(Table(("code", "n", "steps/window", "spikes != finer code", f"ms per window ({a.size} neurons, numpy)",
             "us per step"),
            cost).to_markdown())  # fmt: skip

# %% [markdown]
# ## What it costs
#
# A neuron still sends at most two spikes (SC-TTFS sends fewer as `n` grows: see below). The
# cost is time steps: `n T` per window. A simulator does `n` times as many updates (the
# timings above), and hardware that pays per time step (eq. 25's `L E_l`) pays `n` times the
# latency term. With eq. 25 on TrueNorth weights, per neuron and window:

# %%
rows_e = []
for name, code in codes.items():
    for n in NS:
        fine = finer_time_code(code, n)
        t_enc, t_cal = fine.spike_times(a)
        spikes = float(np.mean((t_enc >= 0).astype(int) + (t_cal >= 0)))
        e = energy(spikes, n * T, "truenorth")
        err = error_decomposition(a, fine).mean
        rows_e.append((name, n, spikes, n * T, e, err))
print(Table(("code", "n", "spikes/neuron N", "latency L (steps)", "E = 0.4 N + 0.6 L", "mean error"),
            rows_e).to_markdown())  # fmt: skip

fig, ax = plt.subplots(figsize=(6, 4))
for name, marker in (("TTFS", "o"), ("SC-TTFS", "s")):
    sel = [r for r in rows_e if r[0] == name]
    ax.loglog([r[4] for r in sel], [r[5] for r in sel], marker + "-", label=name)
    for r in sel:
        ax.annotate(f"n={r[1]}", (r[4], r[5]), fontsize=7, textcoords="offset points", xytext=(4, 2))
ax.set_xlabel("eq. 25 energy per neuron and window (TrueNorth weights)")
ax.set_ylabel("mean error per neuron")
ax.legend()

# %%
sc_error = next(r[5] for r in rows_e if r[0] == "SC-TTFS" and r[1] == 1)
sc_energy = next(r[4] for r in rows_e if r[0] == "SC-TTFS" and r[1] == 1)
reach = [r for r in rows_e if r[0] == "TTFS" and r[5] <= sc_error]
print(f"SC-TTFS at n = 1: mean error {sc_error:.4g}, energy {sc_energy:.4g};",
      f"TTFS reaches that error at n = {reach[0][1]} (energy {reach[0][4]:.4g})" if reach else
      f"TTFS does not reach it up to n = {NS[-1]} (its upper clip stays)")  # fmt: skip

# %% [markdown]
# This is the paper's argument for the calibration spike, seen from the continuous-time side:
# at a fixed number of steps a second spike is a cheaper way to resolve the potential than
# more steps, and it also covers the range that TTFS clips.
