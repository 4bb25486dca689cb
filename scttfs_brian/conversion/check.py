"""The reproduction check: with plain ReLUs in place of the codes, the converted graph must
compute what the ANN computes (float64, on a random input).

It catches forward methods whose meaning tracing cannot see (an in-place update of a tensor that
is used again, values computed from the data used as constants). The graph runs on the torch
engine's one executor (:func:`scttfs_brian.torch.relu_forward`).
"""

from __future__ import annotations

import torch

from ..graph import Graph
from ..torch import relu_forward
from .affine import F64
from .walker import Traced

__all__ = ["check_reproduces"]


def check_reproduces(traced: Traced, graph: Graph, nonnegative: bool) -> None:
    """Raise ``ValueError`` unless ``graph`` with ReLUs reproduces ``traced``'s ANN to within
    ``1e-8 (1 + max |output|)`` on two random samples (uniform in [0, 1) when ``nonnegative``,
    the encoded input's range, else standard normal)."""
    gen = torch.Generator().manual_seed(0)
    shape = (2,) + traced.input_shape
    x = (
        torch.rand(shape, generator=gen, dtype=F64)
        if nonnegative
        else torch.randn(shape, generator=gen, dtype=F64)
    )
    with torch.no_grad():
        want = traced.module(x.to(traced.device)).to("cpu")
        got = relu_forward(graph, x)
    err = float((want - got).abs().max())
    if not err <= 1e-8 * (1.0 + float(want.abs().max())):
        raise ValueError(
            f"the converted graph does not reproduce the model (max |difference| {err:.3g} on a random input with "
            "plain ReLUs); forward probably updates in place a tensor that is used again, or uses values computed "
            "from the data as constants: rewrite forward without them"
        )
