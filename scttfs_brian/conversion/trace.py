"""The ANN as a traced ``torch.fx`` graph, run once to record shapes and, on demand, activations.

:func:`symbolic` makes the float64 eval copy of the ANN and traces it; :func:`record_shapes` runs it
on a batch of two zero samples and keeps each node's output shape (tensors) or value (sizes,
ints), which the walker (:mod:`.walker`) reads; :func:`record_values` runs it on real batches
and keeps the outputs of chosen nodes (the ReLUs: the ANN's activations).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn as nn

from .affine import F64
from .rules import describe, supported_text

__all__ = ["TensorInfo", "symbolic", "record_shapes", "record_values", "input_shape_of", "as_batches"]


@dataclass(frozen=True)
class TensorInfo:
    """What the walker needs of a tensor-valued node: its shape (batch of two included)."""

    shape: tuple


class _Recorder(torch.fx.Interpreter):
    """Runs the traced model once, keeping each node's shape (tensors) or value (sizes, ints), or
    with ``capture`` (``{node name: anything}``) the values of those nodes only."""

    def __init__(self, gm: torch.fx.GraphModule, capture: Mapping | None = None):
        super().__init__(gm)
        self.extra_traceback = False
        self.capture = capture or {}
        self.values: dict = {}
        self.current = None

    def run_node(self, n):
        self.current = n
        out = super().run_node(n)
        if n.name in self.capture:
            self.values[n.name] = out.detach().to("cpu", F64).numpy().copy()  # copy: in-place ops follow
        elif not self.capture:
            self.values[n] = TensorInfo(tuple(out.shape)) if isinstance(out, torch.Tensor) else out
        return out


def symbolic(ann: nn.Module) -> tuple[torch.fx.GraphModule, torch.device]:
    """A float64 eval-mode copy of ``ann`` traced by ``torch.fx``, and the device of its
    parameters (``ann`` is not modified); refuses non-finite parameters, naming them."""
    _check_finite(ann)
    model = copy.deepcopy(ann).eval().to(F64)
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as err:  # tracing errors come in many types
        raise ValueError(
            f"torch.fx could not trace {type(ann).__name__}.forward ({type(err).__name__}: {err}); convert needs "
            "a forward without data-dependent control flow, built from " + supported_text()
        ) from err
    param = next(iter(gm.parameters()), None)
    return gm, param.device if param is not None else torch.device("cpu")


def record_shapes(gm: torch.fx.GraphModule, input_shape: tuple, device) -> dict:
    """``{node: TensorInfo or value}`` from one run on zeros; names the node where the input
    shape does not fit."""
    # batch of 2: a reshape that mixes samples (view(-1)) shows up as a wrong batch axis
    rec = _Recorder(gm)
    try:
        with torch.no_grad():
            rec.run(torch.zeros((2,) + input_shape, dtype=F64, device=device))
    except Exception as err:
        where = describe(gm, rec.current) if rec.current is not None else "the model"
        raise ValueError(
            f"input_shape {input_shape} does not fit the model: {where} failed with {type(err).__name__}: {err}"
        ) from err
    return rec.values


def record_values(gm: torch.fx.GraphModule, device, batches: list, nodes: Mapping) -> dict:
    """``{name: array (N, ...)}``: the outputs of the nodes ``{node name: name}`` over all
    ``batches`` (float64 numpy, concatenated)."""
    out: dict[str, list] = {name: [] for name in nodes.values()}
    for x in batches:
        rec = _Recorder(gm, nodes)
        with torch.no_grad():
            rec.run(x.to(device, F64))
        for node, name in nodes.items():
            out[name].append(rec.values[node])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def input_shape_of(input_shape: Any) -> tuple:
    """``input_shape`` as a tuple of positive ints (an int is a flat input), or a clear error."""
    if isinstance(input_shape, numbers.Integral):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = bool(shape) and all(s == v and s >= 1 for s, v in zip(shape, input_shape, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"input_shape must be a tuple of positive ints without the batch axis, e.g. (1, 8, 8) (got {input_shape!r})"
        )
    return shape


def _check_finite(ann: nn.Module) -> None:
    tensors = list(ann.named_parameters()) + list(ann.named_buffers())
    for name, t in tensors:
        if t is None or not t.is_floating_point():
            continue
        bad = int((~torch.isfinite(t.detach())).sum())
        if bad:
            path = name.rpartition(".")[0]
            owner = ann.get_submodule(path) if path else ann
            raise ValueError(
                f"parameter '{name}' of {type(owner).__name__} '{path or '(root)'}' holds {bad} non-finite "
                "value(s) (NaN or inf); fix or re-train the model before converting"
            )


def as_batches(data: Any, input_shape: tuple | None) -> list:
    """Calibration data as a list of float64 CPU batches ``(B, *input_shape)``: a tensor / array
    is one batch; any other iterable yields batches, each a tensor or a tuple whose first element
    is the input (as a ``DataLoader`` yields ``(x, y)``). ``input_shape=None``: taken from the
    first batch."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = [data]
    elif not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        raise TypeError(
            f"calibration data must be a tensor or an iterable of batches (got {type(data).__name__})"
        )
    batches = []
    for item in data:
        if isinstance(item, (tuple, list)) and item:
            item = item[0]
        x = (
            torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item)
            .detach()
            .to("cpu", F64)
        )
        shape = tuple(x.shape[1:])
        if input_shape is not None and shape != tuple(input_shape):
            raise ValueError(
                f"a calibration batch has shape {tuple(x.shape)}; expected (B, *{tuple(input_shape)})"
            )
        if batches and shape != tuple(batches[0].shape[1:]):
            raise ValueError(
                f"calibration batches differ in sample shape: {tuple(batches[0].shape[1:])} and {shape}"
            )
        if x.dim() < 2 or not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"calibration batches must be finite (B, *input_shape) tensors (got shape {tuple(x.shape)})"
            )
        batches.append(x)
    if not batches:
        raise ValueError("calibration data holds no batch")
    return batches
