r"""A tensor inside the ANN as an affine expression of spiking populations, and the folding of
BatchNorm into weights (eq. 24).

Between two ReLUs the ANN is affine: a value is a sum over sources (spiking layers or the input)
of linear graph operations applied to the source, plus a bias. :class:`Affine` is that
expression for one sample; the rule handlers of :mod:`.rules` extend it operation by operation,
and a ReLU closes it into a layer (:mod:`.walker`). Biases are pushed through the operations that
follow them with the torch engine's one graph-op executor (:func:`scttfs_brian.torch.apply_op`):
a constant through a padded convolution is not constant at the borders, so a layer's bias is
exact per neuron.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..graph import AvgPool2d, Conv2d, Dense
from ..torch import apply_op

__all__ = ["Affine", "F64"]

F64 = torch.float64


@dataclass(frozen=True)
class Affine:
    """The sum over ``terms`` ``(source, ops)`` of the ops applied to the source, plus ``bias``
    (one sample, float64), produced by the module at path ``origin`` (names functional ReLUs)."""

    terms: tuple
    bias: torch.Tensor
    origin: str

    @property
    def shape(self) -> tuple:
        return tuple(self.bias.shape)

    def then(self, op, origin: str) -> Affine:
        """This expression followed by the graph operation ``op``."""
        terms = tuple((src, ops + (op,)) for src, ops in self.terms)
        return Affine(terms, apply_op(op, self.bias[None])[0], origin)

    def plus_bias(self, bias_param: torch.Tensor | None, origin: str) -> Affine:
        """Add a per-channel bias parameter (``None``: none) to the expression."""
        if bias_param is None:
            return Affine(self.terms, self.bias, origin)
        b = bias_param.detach().to("cpu", F64).reshape((-1,) + (1,) * (self.bias.dim() - 1))
        return Affine(self.terms, self.bias + b, origin)

    def batch_norm(self, mu, sigma, gamma, beta, origin: str) -> Affine:
        r"""Fold a BatchNorm with these statistics (1-D float64 tensors) into the expression
        (eq. 24): :math:`W \leftarrow W\gamma/\sigma`, :math:`b \leftarrow \beta +
        (b-\mu)\gamma/\sigma`. A term without a weight operation to fold into gets an exact
        diagonal map."""
        scale = gamma / sigma
        terms = []
        for src, ops in self.terms:
            scaled = scale_ops(ops, scale.numpy())
            if scaled is None:  # nothing to fold into: an exact diagonal map
                scaled = ops + (diagonal(scale.numpy(), len(self.shape)),)
            terms.append((src, scaled))
        per_channel = (-1,) + (1,) * (len(self.shape) - 1)
        bias = beta.reshape(per_channel) + (self.bias - mu.reshape(per_channel)) * scale.reshape(per_channel)
        return Affine(tuple(terms), bias, origin)


def scale_ops(ops: tuple, s: np.ndarray) -> tuple | None:
    """``ops`` with their output scaled by ``s`` along the channel axis, folded into the last
    weight operation (eq. 24); average pooling, acting per channel, commutes with the scaling.
    ``None`` when there is no weight operation to fold into."""
    if not ops:
        return None
    last = ops[-1]
    if isinstance(last, Dense):
        return ops[:-1] + (Dense(last.weight * s[:, None]),)
    if isinstance(last, Conv2d):
        return ops[:-1] + (Conv2d(last.weight * s[:, None, None, None], last.stride, last.padding),)
    if isinstance(last, AvgPool2d):
        head = scale_ops(ops[:-1], s)
        return None if head is None else head + (last,)
    return None


def diagonal(s: np.ndarray, ndim: int) -> Dense | Conv2d:
    """The per-channel scaling by ``s`` as a graph operation on a tensor of ``ndim`` axes."""
    return Dense(np.diag(s)) if ndim == 1 else Conv2d(np.diag(s)[:, :, None, None])


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A parameter as a float64 numpy copy."""
    return t.detach().to("cpu", F64).numpy().copy()


def pair(x: Any) -> tuple[int, int]:
    """An int or a sequence of one or two ints as a pair (torch's size arguments)."""
    if isinstance(x, numbers.Integral):
        return (int(x), int(x))
    x = tuple(int(v) for v in x)
    return x * 2 if len(x) == 1 else x


def bind(args, kwargs, names: str, defaults: tuple) -> dict:
    """The arguments of a call as ``{name: value}``: ``names`` in order, the last ones with
    ``defaults``."""
    names = names.split()
    required = len(names) - len(defaults)
    out = dict(zip(names[required:], defaults, strict=True))
    out.update(zip(names, args, strict=False))
    out.update(kwargs)
    return out
