"""graph: see docs/architecture.md."""

from .core import (  # noqa: F401
    INPUT,
    AvgPool2d,
    Conv2d,
    ConvSpec,
    Dense,
    Flatten,
    Graph,
    Layer,
    Projection,
    avg_pool2d_connectivity,
    conv2d_connectivity,
)
