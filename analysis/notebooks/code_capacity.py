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
# # Code capacity: N(T) = T(T+3)/2 against the words real kernels reach
#
# The paper counts every admissible pair `(t_enc, t_cal >= t_enc)` plus "no calibration":
# `N(T) = sum_{i=1..T} (i+1)`. With decreasing kernels some pairs are unreachable: after an encoding
# spike at `t >= 1` the residual is below `theta_e(t-1) - theta_e(t)`.

# %%
import matplotlib.pyplot as plt

from scttfs_brian import PRESETS, SCTTFSCode
from scttfs_brian.analysis import capacity_table, code_capacity

table = capacity_table(range(1, 11))
print(table.to_markdown())

# %%
fig, ax = plt.subplots(figsize=(6, 4))
Ts = table.column("T")
ax.plot(Ts, table.column("N(T) paper"), "k-o", label="N(T) = T(T+3)/2 (paper)")
ax.plot(Ts, table.column("reachable cifar10"), "C3-s", label="reachable, CIFAR10 kernels")
ax.plot(Ts, table.column("reachable cifar100"), "C0--^", label="reachable, CIFAR100 kernels")
ax.plot(Ts, table.column("TTFS T"), "C2-", label="TTFS: T")
ax.set_xlabel("window T (steps)")
ax.set_ylabel("non-zero code words")
ax.legend()

# %% [markdown]
# Which words are unreachable with the CIFAR10 kernels, and why (T = 6):

# %%
code = SCTTFSCode(6, *PRESETS["cifar10"])
admissible = {(w.t_enc, w.t_cal) for w in code.codebook(include_unreachable=True)}
reachable = {(w.t_enc, w.t_cal) for w in code.codebook()}
for t, s in sorted(admissible - reachable):
    gap = code.table_e[t - 1] - code.table_e[t]
    print(f"(t_enc={t}, t_cal={s}): theta_c({s}) = {code.table_c[s]:.4f} >= gap {gap:.4f}")
print(code_capacity(code))

# %%
# the code book itself: every reachable word and its value
for w in code.codebook():
    print(f"t_enc={w.t_enc:2d} t_cal={w.t_cal:2d} value={w.value:.5f}")
