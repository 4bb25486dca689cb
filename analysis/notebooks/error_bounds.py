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
# # Conversion error of TTFS and SC-TTFS: the bounds of eqs. 18-19 and the realized error
#
# For activations `a` of a layer and a code, `z = code.quantize(a)` is what the next layer
# decodes. The paper splits the neurons into `L` below the smallest value `s(T)` (silent), `U`
# above the largest (clipped) and the rest (in range), and bounds the error on each part
# (eq. 18 for TTFS, eq. 19 for SC-TTFS):
#
# | term | as the paper writes it | realized here |
# |---|---|---|
# | lower clip | `sum_L abs(a - s(T))` | `sum_L a` (silent, eq. 10) |
# | quantization | `sum abs(s_e(f_e - 1) - s_e(f_e) - s_c(f_c))` | `sum abs(a - z)` in range |
# | upper clip | `sum_U abs(a - max)` | the same (equality) |
#
# `scttfs_brian.analysis.error_bounds(a, code)` returns both, term by term. Its docstring says how
# the paper's symbols are read (window `0..T-1`; `s_e(-1)` is the top of the range).
#
# Edit freely: this file is the notebook (a jupytext percent script); `make notebooks` writes the
# executed copy to `analysis/executed/`.

# %%
import matplotlib.pyplot as plt
import numpy as np

from scttfs_brian import PRESETS, SCTTFSCode, ThresholdKernel, TTFSCode
from scttfs_brian.analysis import Table, error_bounds, scale_code, synthetic_activations

ENC, CAL = PRESETS["cifar10"]  # Table 1, CIFAR10
TS = range(1, 11)
T_PAPER = 6
TERMS = ("lower_clip", "quantization", "upper_clip", "total")


def range_matched(code, a, percentile=99.9):
    """The code scaled so that its largest value is the 99.9th percentile of a > 0."""
    return scale_code(code, float(np.percentile(a[a > 0], percentile)) / code.max_value)


def makers(a):
    return {
        "TTFS (Table 1 enc.)": lambda T: TTFSCode(T, ENC),
        "SC-TTFS (Table 1)": lambda T: SCTTFSCode(T, ENC, CAL),
        "TTFS (range-matched)": lambda T: range_matched(TTFSCode(T, ENC), a),
        "SC-TTFS (range-matched)": lambda T: range_matched(SCTTFSCode(T, ENC, CAL), a),
    }


a = synthetic_activations("half-normal", 20_000, seed=0)  # |N(0, 1)|

# %% [markdown]
# ## At T = 6: the written terms and the realized ones (per neuron)

# %%
rows = []
for name, make in makers(a).items():
    b = error_bounds(a, make(T_PAPER))
    d = b.as_dict(per_neuron=True)
    for term in TERMS:
        rows.append((name, f"eq. {b.equation}", term, d[term], d["realized_" + term], b.holds()[term]))
print(Table(("code", "eq.", "term", "bound", "realized", "holds"), rows).to_markdown(".4f"))

# %% [markdown]
# ## Each term against T, written (dashed) and realized (solid)

# %%
bounds = {name: [error_bounds(a, make(T)) for T in TS] for name, make in makers(a).items()}
fig, axs = plt.subplots(1, len(TERMS), figsize=(17, 4), sharex=True)
for ax, term in zip(axs, TERMS, strict=True):
    for k, (name, seq) in enumerate(bounds.items()):
        n = seq[0].n
        ax.plot(TS, [b.bound(term) / n for b in seq], "--", color=f"C{k}", alpha=0.7)
        ax.plot(TS, [b.realized(term) / n for b in seq], "-o", color=f"C{k}", ms=3, label=name)
    ax.set_title(f"{term} per neuron")
    ax.set_xlabel("T")
    ax.set_yscale("symlog", linthresh=1e-4)
axs[0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# **TTFS saturates.** With the Table 1 kernel fixed, TTFS's largest value is `theta_e(0) = 0.74`
# whatever T is: more steps add values only *below* the range, so only the lower clip shrinks
# and the total levels off. The paper's premise that TTFS "can only reduce the error by enlarging
# T" (section 2.2) holds only if the kernel is refitted to each T.

# %%
seq = bounds["TTFS (Table 1 enc.)"]
for T, b in zip(TS, seq, strict=True):
    d = b.as_dict(per_neuron=True)
    print(
        f"T={T:2d}  realized total {d['realized_total']:.4f}  lower {d['realized_lower_clip']:.5f}  "
        f"quant. {d['realized_quantization']:.4f}  upper {d['realized_upper_clip']:.4f}"
    )

# %% [markdown]
# ## Kernel parameters: each term against the encoding decay `k_e` and the calibration scale
#
# SC-TTFS at T = 6 with the Table 1 kernels, one parameter varied at a time.


# %%
def sc(k_e=ENC.k, alpha_c=CAL.alpha, T=T_PAPER):
    return SCTTFSCode(T, ThresholdKernel(ENC.alpha, ENC.beta, k_e), ThresholdKernel(alpha_c, CAL.beta, CAL.k))


sweeps = {
    "encoding decay k_e": (np.linspace(0.2, 1.6, 15), lambda v: sc(k_e=v)),
    "calibration alpha_c": (np.geomspace(0.05, 2.0, 15), lambda v: sc(alpha_c=v)),
}
fig, axs = plt.subplots(1, 2, figsize=(13, 4))
for ax, (label, (values, make)) in zip(axs, sweeps.items(), strict=True):
    seq = [error_bounds(a, make(v)) for v in values]
    for k, term in enumerate(TERMS):
        ax.plot(values, [b.realized(term) / b.n for b in seq], "-o", ms=3, color=f"C{k}", label=term)
        ax.plot(values, [b.bound(term) / b.n for b in seq], "--", color=f"C{k}", alpha=0.6)
    ax.set_xlabel(label)
    ax.set_ylabel("per neuron (solid realized, dashed bound)")
    ax.set_yscale("symlog", linthresh=1e-4)
axs[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ...and against T for a few encoding decays: a slower decay needs more steps to reach small
# values (lower clip), a faster one leaves coarse steps at the top (quantization).

# %%
fig, axs = plt.subplots(1, len(TERMS), figsize=(17, 4), sharex=True)
for j, k_e in enumerate((0.4, 0.8, 1.2)):
    seq = [error_bounds(a, sc(k_e=k_e, T=T)) for T in TS]
    for ax, term in zip(axs, TERMS, strict=True):
        ax.plot(TS, [b.realized(term) / b.n for b in seq], "-o", ms=3, color=f"C{j}", label=f"k_e = {k_e}")
        ax.plot(TS, [b.bound(term) / b.n for b in seq], "--", color=f"C{j}", alpha=0.6)
        ax.set_title(f"SC-TTFS {term}")
        ax.set_xlabel("T")
        ax.set_yscale("symlog", linthresh=1e-4)
axs[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Where the bound is reached, and where it is not
#
# * Upper clip: with equality for every clipped neuron.
# * Quantization: a supremum, reached by a potential just below `s_e(f_e - 1)`.
# * Lower clip: the written `abs(a - s(T))` is the error of a neuron clipped *to* the last step
#   (eq. 7); a silent neuron (eq. 10) errs by `a`, so the written term fails for
#   `s(T)/2 < a < s(T)`. `lower_clip_silent = L s(T)` bounds it.

# %%
code = SCTTFSCode(T_PAPER, ENC, CAL)
just_below = np.nextafter(code.table_e[:-1], 0.0)  # one ulp below each s_e(f - 1)
b = error_bounds(just_below, code)
print("quantization: realized / bound =", b.realized_quantization / b.quantization)
s_T = code.min_value
for frac in (0.25, 0.5, 0.9):
    b = error_bounds([frac * s_T], code)
    print(
        f"a = {frac} s(T): realized {b.realized_lower_clip:.5f}, written {b.lower_clip:.5f}, "
        f"L s(T) {b.lower_clip_silent:.5f}, holds as written: {b.holds()['lower_clip']}"
    )
