"""graph: the network as data (see docs/architecture.md).

:mod:`.ops` the linear operations and their connectivity, :mod:`.core` projections, layers and
the graph (checks and windows), :mod:`.io` the ``.npz`` + JSON file format.
"""

from .core import INPUT, Graph, Layer, Projection
from .io import FORMAT, load_graph, save_graph
from .ops import (
    AvgPool2d,
    Conv2d,
    ConvSpec,
    Dense,
    Flatten,
    Op,
    avg_pool2d_connectivity,
    conv2d_connectivity,
    op_matrix,
)

__all__ = [
    "INPUT",
    "Graph",
    "Layer",
    "Projection",
    "FORMAT",
    "load_graph",
    "save_graph",
    "AvgPool2d",
    "Conv2d",
    "ConvSpec",
    "Dense",
    "Flatten",
    "Op",
    "avg_pool2d_connectivity",
    "conv2d_connectivity",
    "op_matrix",
]
