r"""Torch ANN -> SC-TTFS layer graph (SPEC section 2): :func:`convert`.

:func:`convert` reads a trained ReLU network (an ``nn.Module``) with ``torch.fx`` symbolic tracing,
so that both ``nn.Sequential`` stacks and hand-written ``forward`` methods (ResNet blocks with
``F.relu``, ``out + shortcut``, ``x.view(x.size(0), -1)``) are understood, and returns a
:class:`~scttfs_brian.network.SpikingNetwork` over a :class:`~scttfs_brian.graph.Graph`:

* every ReLU becomes a **spiking layer** (its code quantizes ``max(0, x)``); the value it receives
  is an affine expression of earlier spiking layers: the linear operations between two ReLUs
  (Linear, Conv2d, AvgPool2d, Flatten, ...) accumulate into one :class:`~scttfs_brian.graph.Projection`
  per source, and an addition of branches (a residual block) gives a layer with two projections,
  the shortcut from the block's input (delayed by the graph so both arrive in the same window);
* **BatchNorm** is folded into the preceding weight operation (eq. 24):
  :math:`W \leftarrow W\gamma/\sigma`, :math:`b \leftarrow \beta + (b-\mu)\gamma/\sigma`,
  :math:`\sigma = \sqrt{\mathrm{running\_var} + \epsilon}` (a BatchNorm with no weight operation
  before it, e.g. straight after a ReLU, becomes a diagonal 1x1 convolution / dense map: still exact);
* **biases** are pushed through the operations that follow them (a constant through a padded
  convolution is not constant at the borders), so a layer's bias is exact per neuron;
* **average pooling** is linear and folds into the next weight operation (no extra window);
* the returned tensor (no ReLU after it) is the **output layer** ``"output"``: it only integrates.

Conventions (decisions of this package):

* A ReLU applied to the output of another ReLU is the identity and is folded away (no extra layer).
  A ReLU applied straight to the (possibly negative) input becomes a spiking layer of its own.
* Layer names: an ``nn.ReLU`` module gives its qualified path (``"features.2"``,
  ``"layer1.0.relu"``); a functional ReLU (``F.relu``, ``torch.relu``, ``x.relu()``) gives
  ``"<path of the module whose output it rectifies>.relu"`` (for a sum of branches, the left
  operand's), e.g. ``"fc1.relu"``, ``"layer1.0.bn2.relu"``. A name seen before (one ``nn.ReLU``
  called several times) gets ``_1``, ``_2``, ... in order of execution; ``"input"`` and
  ``"output"`` are reserved; the output layer is ``"output"``.
* After conversion the graph is checked against the model (:mod:`.check`): with plain ReLUs in
  place of the codes it must reproduce the model's output on a random input (float64), otherwise
  :func:`convert` raises.

What is supported, and what is refused with which advice, is the rule table
:data:`~.rules.RULES`: anything without an exact SC-TTFS equivalent (max pooling, other
activations, layer/group norm, grouped or dilated convolutions, concatenation, attention, ...)
raises ``ValueError`` naming the module (or the function and the module whose ``forward`` calls
it) and what to use instead.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch.nn as nn

from ..coding import SCTTFSCode, TTFSCode
from ..graph import Graph, Layer
from ..network import SpikingNetwork
from .check import check_reproduces
from .kernels import check_kind, code_from_activations, codes_from_activations
from .trace import as_batches
from .walker import OUTPUT, Traced, activations, read_model

__all__ = ["convert"]


def convert(
    ann: nn.Module,
    input_shape: Any,
    code: Any = "auto",
    *,
    calibration_data: Any = None,
    T: int | None = None,
    kind: str = "sc-ttfs",
    input_code: Any = None,
) -> SpikingNetwork:
    """Convert a trained ReLU network into an SC-TTFS (or TTFS) spiking network.

    Parameters
    ----------
    ann : torch.nn.Module
        The trained ANN. It is not modified: conversion works on a float64 copy in eval mode
        (BatchNorm uses its running statistics).
    input_shape : tuple of int
        Shape of one input sample without the batch axis, e.g. ``(1, 8, 8)`` or ``(64,)``.
    code : SCTTFSCode, TTFSCode, dict or "auto"
        One code for every spiking layer; or ``{layer_name: code}`` covering every spiking layer;
        or ``"auto"``: each layer's kernels are fitted to the ANN's activations at its ReLU on
        ``calibration_data`` by :func:`~.kernels.code_from_activations` (window ``T``, codes of
        ``kind``).
    calibration_data : tensor or iterable of batches, optional
        Needed by ``code="auto"`` (and ``input_code="auto"``). A tensor / array is one batch
        ``(B, *input_shape)``; any other iterable yields batches, each a tensor or a tuple whose
        first element is the input (as a ``DataLoader`` yields ``(x, y)``).
    T : int, optional
        Window length in steps for ``"auto"`` codes; with given codes it must match theirs.
    kind : {"sc-ttfs", "ttfs"}
        Which code ``"auto"`` fits: SC-TTFS (eqs. 9-17) or the single-spike TTFS baseline.
    input_code : SCTTFSCode, TTFSCode, "auto" or None
        ``None``: the input is analog, the first layer's potential starts at ``W x + b``
        (SPEC section 2). A code (or ``"auto"``, fitted to the calibration inputs): the pixels
        are encoded by a spiking input layer, so inputs must be non-negative.

    Returns
    -------
    SpikingNetwork
        ``.graph`` holds the layers; ``.functional`` / ``.simulate`` run it.

    Raises
    ------
    ValueError
        For an unsupported module or function (naming it and what to use instead), an
        ``input_shape`` the model does not accept, non-finite weights or BatchNorm statistics,
        codes that do not cover the layers, or a model the graph does not reproduce.
    """
    check_kind(kind)
    traced = read_model(ann, input_shape)
    names = [spec.name for spec in traced.layers if spec.name != OUTPUT]
    if not names and input_code is None:
        raise ValueError(
            f"{type(ann).__name__} has no ReLU, so its conversion has no spiking layer; convert a ReLU network, "
            "or encode the input (input_code=...) to run a linear model on spikes"
        )
    batches = None
    if _is_auto(code) or _is_auto(input_code):
        if calibration_data is None or T is None:
            raise ValueError(
                "code='auto' (or input_code='auto') needs calibration_data (a batch of inputs) and T "
                f"(the window length in steps); got calibration_data={type(calibration_data).__name__}, T={T!r}"
            )
        batches = as_batches(calibration_data, traced.input_shape)
        if sum(len(b) for b in batches) == 0:
            raise ValueError(
                "calibration_data holds no samples; pass a batch of inputs (e.g. a few hundred training images)"
            )
        if not any(bool((b != 0).any()) for b in batches):
            raise ValueError(
                "calibration_data is all zeros: the kernels would be fitted to the biases alone; pass real "
                "inputs (e.g. a few hundred training images)"
            )
    codes = _layer_codes(code, names, traced, batches, T, kind)
    input_code = _input_code(input_code, batches, T, kind)
    layers = [Layer(s.name, s.shape, s.projections, s.bias, codes.get(s.name)) for s in traced.layers]
    graph = Graph(traced.input_shape, layers, input_code=input_code)
    check_reproduces(traced, graph, nonnegative=input_code is not None)
    return SpikingNetwork(graph)


def _is_auto(code: Any) -> bool:
    return isinstance(code, str) and code == "auto"


def _input_code(input_code: Any, batches, T, kind):
    """The input's code: given, ``None`` (analog) or fitted to the calibration inputs."""
    if _is_auto(input_code):
        x = np.concatenate([b.numpy() for b in batches])
        if np.any(x < 0):
            raise ValueError(
                f"input_code='auto' needs non-negative inputs (got a minimum of {x.min()}); an encoded "
                "input cannot be negative: rescale the inputs to [0, 1] or keep input_code=None (analog)"
            )
        return code_from_activations(x, T, kind)
    if input_code is not None and T is not None and getattr(input_code, "T", T) != T:
        raise ValueError(f"input_code has T={input_code.T}, but T={T} was given; all windows must match")
    return input_code


def _layer_codes(code: Any, names: list, traced: Traced, batches, T, kind) -> dict:
    """``{layer: code}`` for the spiking layers ``names``, from ``convert``'s ``code``."""
    if _is_auto(code):
        if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
            raise ValueError(f"T must be a positive integer number of steps for code='auto' (got {T!r})")
        acts = activations(traced, batches)
        return codes_from_activations({name: acts[name] for name in names}, int(T), kind)
    if isinstance(code, (SCTTFSCode, TTFSCode)):
        codes = dict.fromkeys(names, code)
    elif isinstance(code, Mapping):
        missing = [n for n in names if n not in code]
        extra = [n for n in code if n not in names]
        if missing or extra:
            raise ValueError(
                f"code dict must name exactly the spiking layers {names}; missing {missing}, unknown {extra}"
            )
        codes = dict(code)
    else:
        raise TypeError(
            f"code must be an SCTTFSCode, a TTFSCode, a dict {{layer: code}} or 'auto' (got {code!r})"
        )
    if T is not None:
        wrong = {n: c.T for n, c in codes.items() if getattr(c, "T", T) != T}
        if wrong:
            raise ValueError(f"T={T} was given, but these codes have other windows: {wrong}")
    return codes
