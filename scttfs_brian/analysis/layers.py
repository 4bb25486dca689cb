r"""The conversion error followed through a whole network, layer by layer.

The paper notes (section 3.4) that "the approximation error of the layers accumulates layer by
layer" and fine-tunes against it; :func:`layer_errors` measures it. For each spiking layer it
compares what the SNN's neurons decode (:math:`z^l = s^e(t_e) + s^c(t_c)`, recorded by the torch
engine, ``snn.functional(x, record=True).decoded``) with the ANN's activation at the same ReLU
(:math:`a^l`, read with a forward hook), and the output potentials with the ANN's output. The
difference at layer :math:`l` holds the quantization and clipping of layer :math:`l` *and* of every
layer before it (the SNN's layer :math:`l` integrates :math:`z^{l-1}`, not :math:`a^{l-1}`); the
error of layer :math:`l` alone, :math:`|q^l(a^l) - a^l|` with its code :math:`q^l` applied to the
ANN's own activations, is given next to it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tables import Table

__all__ = ["LayerError", "NetworkErrors", "layer_errors"]


@dataclass(frozen=True)
class LayerError:
    r"""Difference between the SNN's decoded values and the ANN's activations at one layer.

    Attributes
    ----------
    layer : str
        Population name (the ANN module name of its ReLU; ``"output"`` for the output layer).
    depth : int
        1 for the first spiking layer, then in order; the output layer is last.
    n : int
        Values compared (neurons x inputs).
    mean, max : float
        Mean and largest :math:`|z - a|` over neurons and inputs (accumulated through the network).
    relative : float
        :math:`\sum |z - a| / \sum |a|` (NaN when the ANN's activations are all 0).
    isolated_mean, isolated_relative : float
        The same for the layer's code alone on the ANN's activations, :math:`|q(a) - a|`
        (NaN for the output layer, which has no code).
    """

    layer: str
    depth: int
    n: int
    mean: float
    max: float
    relative: float
    isolated_mean: float
    isolated_relative: float


@dataclass(frozen=True)
class NetworkErrors:
    """:class:`LayerError` of every spiking layer and the output, in network order."""

    layers: tuple[LayerError, ...]
    T: int
    kind: str

    def __getitem__(self, name: str) -> LayerError:
        for e in self.layers:
            if e.layer == name:
                return e
        raise KeyError(f"no layer named {name!r}; layers are {[e.layer for e in self.layers]}")

    def series(self, attr: str) -> np.ndarray:
        """One attribute (``"mean"``, ``"max"``, ``"relative"``, ...) over the layers, in order."""
        return np.array([getattr(e, attr) for e in self.layers], dtype=np.float64)

    def to_table(self, title: str = "") -> Table:
        cols = ("depth", "layer", "n", "mean", "max", "relative", "isolated mean", "isolated relative")
        rows = [
            (e.depth, e.layer, e.n, e.mean, e.max, e.relative, e.isolated_mean, e.isolated_relative)
            for e in self.layers
        ]
        return Table(cols, tuple(rows), title or f"{self.kind} T={self.T}: abs(SNN decoded - ANN) per layer")


def _relu_outputs(ann: Any, names: list[str], x: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import torch

    modules = dict(ann.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(
            f"the SNN's spiking layers {missing} have no module of that name in {type(ann).__name__}; "
            "layer_errors needs the ANN the SNN was converted from (layers are named after its ReLU modules)"
        )
    acts: dict[str, np.ndarray] = {}
    hooks = [
        modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: acts.__setitem__(n, out.detach().double().cpu().numpy())
        )
        for n in names
    ]
    try:
        with torch.no_grad():
            out = ann(torch.as_tensor(x, dtype=torch.float64))
    finally:
        for h in hooks:
            h.remove()
    return acts, out.detach().cpu().numpy()


def _row(name: str, depth: int, z: np.ndarray, a: np.ndarray, q: np.ndarray | None) -> LayerError:
    if z.shape != a.shape:
        raise ValueError(
            f"layer {name!r}: the SNN decodes shape {z.shape}, the ANN's activation is {a.shape}"
        )
    diff = np.abs(z - a)
    scale = float(np.abs(a).sum())
    rel = lambda d: float(d.sum()) / scale if scale > 0 else float("nan")  # noqa: E731
    iso = np.abs(q - a) if q is not None else None
    return LayerError(
        layer=name,
        depth=depth,
        n=int(diff.size),
        mean=float(diff.mean()),
        max=float(diff.max()),
        relative=rel(diff),
        isolated_mean=float(iso.mean()) if iso is not None else float("nan"),
        isolated_relative=rel(iso) if iso is not None else float("nan"),
    )


def layer_errors(ann: Any, snn: Any, x: Any) -> NetworkErrors:
    """Per layer, the accumulated difference between the SNN's decoded values and the ANN's
    activations on inputs ``x``.

    Parameters
    ----------
    ann : torch.nn.Module
        The ANN ``snn`` was converted from (its spiking layers are named after its ReLU modules).
        A float64 copy in eval mode is run; ``ann`` is not modified.
    snn : SpikingNetwork
        The converted network; run with the torch engine, ``snn.functional(x, record=True)``, in
        float64.
    x : tensor or array
        A batch of inputs ``(B, *input_shape)``.

    Returns
    -------
    NetworkErrors
        One :class:`LayerError` per spiking layer (depth 1, 2, ...) and one for the output
        potentials against the ANN's output. The first layer's accumulated and isolated errors
        coincide (it integrates the same analog input); the gap between them at later layers is
        what the layers before added.
    """
    import torch

    graph = snn.graph
    spiking = [layer.name for layer in graph.layers if layer.spiking]
    ann64 = copy.deepcopy(ann).double().eval()
    acts, ann_out = _relu_outputs(ann64, spiking, x)
    out = snn.functional(torch.as_tensor(x, dtype=torch.float64), record=spiking)
    rows = []
    for depth, name in enumerate(spiking, start=1):
        a = acts[name]
        z = out.decoded[name].detach().double().cpu().numpy()
        rows.append(_row(name, depth, z, a, graph[name].code.quantize(a)))
    snn_out = out.output.detach().double().cpu().numpy()
    rows.append(_row(graph.output.name, len(spiking) + 1, snn_out, ann_out.reshape(snn_out.shape), None))
    codes = [graph[n].code for n in spiking]
    T = codes[0].T if codes else 0
    kind = "SC-TTFS" if codes and codes[0].has_calibration else "TTFS"
    return NetworkErrors(tuple(rows), T, kind)
