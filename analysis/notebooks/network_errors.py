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
# # The conversion error through a whole network (digits CNN)
#
# Each spiking layer of a converted network integrates what the previous layer's neurons
# *decode*, not the ANN's activations, so the errors of eqs. 18-19 accumulate with depth (the
# paper's section 3.4). `scttfs_brian.analysis.layer_errors(ann, snn, x)` compares, layer by
# layer, the SNN's decoded values (recorded by the torch engine) with the ANN's ReLU outputs,
# next to the error the layer's code makes on the ANN's own activations ("isolated").
#
# The CNN is trained here (8 epochs of Adam, seed 0, about 10 s on one core); the kernels of every
# layer are fitted to its activations (`convert(..., code="auto")`) for TTFS and SC-TTFS.

# %%
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import scttfs_brian
from scttfs_brian import convert
from scttfs_brian.analysis import Table, error_decomposition, layer_errors

ROOT = Path(scttfs_brian.__file__).resolve().parents[1]  # the repository (editable install)
sys.path.insert(0, str(ROOT / "analysis"))
from digits_activations import relu_activations, train_digits_cnn  # noqa: E402

torch.set_num_threads(1)
ann, data = train_digits_cnn(epochs=8, seed=0)
with torch.no_grad():
    accuracy = float((ann(data.x_test).argmax(1) == data.y_test).float().mean())
print(f"ANN test accuracy {100 * accuracy:.1f} %")

# %%
KINDS = {"sc-ttfs": "SC-TTFS", "ttfs": "TTFS"}
TS = (2, 3, 4, 6)
snns = {
    (kind, T): convert(
        ann, input_shape=(1, 8, 8), code="auto", T=T, kind=kind, calibration_data=data.x_train[:512]
    )
    for kind in KINDS
    for T in TS
}
errors = {key: layer_errors(ann, snn, data.x_test) for key, snn in snns.items()}
print(errors["sc-ttfs", 3].to_table().to_markdown(".4g"))
print(errors["ttfs", 3].to_table().to_markdown(".4g"))

# %% [markdown]
# ## Error against depth (T = 3): accumulated (solid) and the layer's own (dashed)

# %%
fig, axs = plt.subplots(1, 2, figsize=(13, 4))
for k, (kind, label) in enumerate(KINDS.items()):
    ne = errors[kind, 3]
    depth = ne.series("depth")
    names = [e.layer for e in ne.layers]
    axs[0].plot(depth, ne.series("relative"), "-o", color=f"C{k}", label=f"{label} accumulated")
    axs[0].plot(depth, ne.series("isolated_relative"), "--s", color=f"C{k}", label=f"{label} layer alone")
    axs[1].plot(depth, ne.series("mean"), "-o", color=f"C{k}", label=label)
axs[0].set_ylabel("sum |z - a| / sum |a|")
axs[1].set_ylabel("mean |z - a|")
axs[1].set_yscale("log")
for ax in axs:
    ax.set_xticks(depth, names, rotation=30, fontsize=8)
    ax.set_xlabel("layer (depth)")
    ax.legend(fontsize=8)
fig.suptitle("digits CNN, T = 3: |SNN decoded - ANN activation| per layer")
fig.tight_layout()

# %% [markdown]
# ## Error against T: the output potentials and the last hidden layer

# %%
fig, axs = plt.subplots(1, 2, figsize=(13, 4))
for k, (kind, label) in enumerate(KINDS.items()):
    for ax, which in zip(axs, (-2, -1), strict=True):
        ax.plot(TS, [errors[kind, T].layers[which].relative for T in TS], "-o", color=f"C{k}", label=label)
        ax.set_title(f"{errors[kind, TS[0]].layers[which].layer}: relative error vs T")
for ax in axs:
    ax.set_xlabel("T")
    ax.set_ylabel("sum |z - a| / sum |a|")
    ax.set_ylim(bottom=0)
    ax.legend()
fig.tight_layout()

# %%
rows = []
for (kind, T), ne in errors.items():
    snn = snns[kind, T]
    with torch.no_grad():
        acc = float((snn.functional(data.x_test).output.argmax(1) == data.y_test).double().mean())
    rows.append((KINDS[kind], T, ne.layers[-2].relative, ne.layers[-1].relative, 100 * acc))
cols = ("code", "T", "last hidden relative", "output relative", "SNN accuracy %")
print(Table(cols, rows, f"ANN {100 * accuracy:.1f} %; kernels fitted per layer").to_markdown(".4g"))

# %% [markdown]
# ## The layers in isolation: the terms of eqs. 18-19 on the ANN's own activations (T = 3)

# %%
acts = relu_activations(ann, data.x_test)
rows = []
for layer, a in acts.items():
    for kind, label in KINDS.items():
        e = error_decomposition(a, snns[kind, 3].graph[layer].code)
        rows.append((layer, label, e.e_c_min / e.n, e.e_q / e.n, e.e_c_max / e.n, e.total / e.n))
print(Table(("layer", "code", "e_c_min", "e_q", "e_c_max", "total"), rows).to_markdown(".4f"))
