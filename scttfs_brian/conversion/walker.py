"""The walk over the traced ANN: tensors become affine expressions, each ReLU closes a layer.

:func:`read_model` traces the ANN (:mod:`.trace`) and interprets its fx graph abstractly with
:class:`Walker`: every tensor is an :class:`~.affine.Affine` expression of spiking populations,
every call is handled by its rule in :data:`~.rules.RULES`, and each ReLU closes the expression
it rectifies into a layer (:class:`LayerSpec`). The result, :class:`Traced`, is what
:func:`~.api.convert` turns into a :class:`~scttfs_brian.graph.Graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn as nn

from ..graph import INPUT, Projection
from .affine import F64, Affine
from .rules import describe, refusal, rule_for
from .trace import TensorInfo, input_shape_of, record_shapes, record_values, symbolic

__all__ = ["OUTPUT", "LayerSpec", "Traced", "Walker", "read_model", "activations"]

#: Name of the output layer of every converted graph.
OUTPUT = "output"


@dataclass
class LayerSpec:
    """A layer found by the walk: name, shape of one sample, projections, bias (flat)."""

    name: str
    shape: tuple
    projections: list
    bias: np.ndarray
    node: str | None  #: fx node of its ReLU (None for the output)


@dataclass
class Traced:
    """The ANN read: its traced float64 eval copy and the layers in topological order."""

    module: torch.fx.GraphModule  #: float64 eval copy of the ANN
    input_shape: tuple
    layers: list
    device: torch.device


def read_model(ann: nn.Module, input_shape: Any) -> Traced:
    """Trace ``ann`` and walk it into layers (``ann`` is not modified)."""
    if not isinstance(ann, nn.Module):
        raise TypeError(
            f"ann must be a torch.nn.Module (got {type(ann).__name__}); load weights with load_state_dict"
        )
    input_shape = input_shape_of(input_shape)
    gm, device = symbolic(ann)
    info = record_shapes(gm, input_shape, device)
    return Traced(gm, input_shape, Walker(gm, info, input_shape).run(), device)


def activations(traced: Traced, batches: list) -> dict:
    """The ANN's activations at each spiking layer's ReLU: ``{layer name: (N, *shape)}``."""
    nodes = {s.node: s.name for s in traced.layers if s.node is not None}
    return record_values(traced.module, traced.device, batches, nodes)


class Walker:
    """Interprets the fx graph abstractly: tensors become :class:`~.affine.Affine` expressions of
    spiking populations; each ReLU closes one into a layer."""

    def __init__(self, gm: torch.fx.GraphModule, info: dict, input_shape: tuple):
        self.gm = gm
        self.info = info
        self.input_shape = input_shape
        self.layers: list[LayerSpec] = []
        self.used = {INPUT, OUTPUT}
        self.has_input = False

    def run(self) -> list:
        """Walk every node; return the layers the output reads, in order."""
        env: dict = {}
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                env[node] = self._input(node)
            elif node.op == "output":
                self._output(node, env)
            elif node.op == "get_attr":
                raise refusal(
                    self.gm, node, "reads a parameter or buffer directly in forward; wrap it in a module"
                )
            elif not isinstance(self.info[node], TensorInfo):
                if _holds_tensor(self.info[node]):
                    raise refusal(self.gm, node)
                env[node] = self.info[node]  # sizes, ints: concrete values
            else:
                env[node] = self._call(node, env)
        return self._prune()

    def _input(self, node) -> Affine:
        if self.has_input:
            raise ValueError(
                f"the model's forward takes more than one input ('{node.target}'); convert needs one"
            )
        self.has_input = True
        return Affine(((INPUT, ()),), torch.zeros(self.input_shape, dtype=F64), INPUT)

    def _call(self, node, env) -> Affine:
        """One call (module, function or method) on tensors, by its rule."""
        shape = self.info[node].shape
        if len(shape) == 0 or shape[0] != 2:
            raise refusal(
                self.gm, node, f"mixes the samples of a batch (output shape {shape} for a batch of 2)"
            )
        args = torch.fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
        module = None
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            if len(args) != 1 or kwargs or not isinstance(args[0], Affine):
                raise refusal(self.gm, node, "is called with extra arguments")
        rule = rule_for(node, module)
        if rule is None or not rule.supported:
            raise refusal(self.gm, node)
        out = rule.handler(self, node, module, args, kwargs, shape[1:])
        if out.shape != shape[1:]:  # a bug here, never the user's
            raise RuntimeError(
                f"converter: shape {out.shape} != torch's {shape[1:]} at {describe(self.gm, node)}"
            )
        return out

    def close_layer(self, node, x: Affine, path: str | None) -> Affine:
        """A ReLU of ``x``: a new spiking layer (named ``path``, or after ``x``'s origin for a
        functional ReLU), whose decoded values are the result."""
        if not x.terms:
            raise refusal(self.gm, node, "receives a constant that does not depend on the input")
        if len(x.terms) == 1 and x.terms[0][1] == () and x.terms[0][0] != INPUT and not bool(x.bias.any()):
            return x  # ReLU of a ReLU's output: the identity (decoded values are >= 0)
        name = self._unique(path if path is not None else f"{x.origin}.relu")
        projections = [Projection(src, ops) for src, ops in x.terms]
        self.layers.append(
            LayerSpec(name, x.shape, projections, x.bias.reshape(-1).numpy().copy(), node.name)
        )
        return Affine(((name, ()),), torch.zeros(x.shape, dtype=F64), name)

    def _output(self, node, env) -> None:
        arg = node.args[0]
        value = env.get(arg) if isinstance(arg, torch.fx.Node) else arg
        if not isinstance(value, Affine):
            raise ValueError(
                f"the model returns a {type(value).__name__}; convert needs forward to return one tensor"
            )
        if not value.terms:
            raise ValueError("the model's output does not depend on its input; nothing to convert")
        projections = [Projection(src, ops) for src, ops in value.terms]
        self.layers.append(
            LayerSpec(OUTPUT, value.shape, projections, value.bias.reshape(-1).numpy().copy(), None)
        )

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def _prune(self) -> list:
        """Drop layers the output does not read (branches computed but never used)."""
        needed = {OUTPUT}
        for spec in reversed(self.layers):
            if spec.name in needed:
                needed.update(p.source for p in spec.projections)
        return [spec for spec in self.layers if spec.name in needed]


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return False
