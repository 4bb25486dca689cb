"""torch: the torch engine ("twin") of a converted network.

- :mod:`.executor`: the graph executor (:class:`GraphModule`, :func:`run` returning the raw
  :class:`FunctionalOutput` tensors, :func:`simulate` returning a ``SimulationResult``), and
  :func:`apply_op` / :func:`relu_forward` (ReLU in place of the codes, the converter's check);
- :mod:`.lookup`: the fast exact path (codeword boundaries, eager and compiled lookup, the
  stepwise loop as reference and fallback) with its caches keyed by code, dtype and device;
- :mod:`.activation`: :class:`SpikingActivation`, the trainable code of section 3.4.

See docs/architecture.md.
"""

from .activation import KernelParameters, SpikingActivation, quantization_error
from .executor import FunctionalOutput, GraphModule, apply_op, relu_forward, run, simulate
from .lookup import (
    METHODS,
    all_finite,
    boundaries,
    compiled_lookup,
    compiled_stepwise,
    encode,
    encode_layer,
    lookup_tables,
    word_lookup,
)

__all__ = [
    "GraphModule",
    "FunctionalOutput",
    "run",
    "simulate",
    "apply_op",
    "relu_forward",
    "SpikingActivation",
    "KernelParameters",
    "quantization_error",
    "METHODS",
    "encode",
    "encode_layer",
    "boundaries",
    "lookup_tables",
    "word_lookup",
    "all_finite",
    "compiled_lookup",
    "compiled_stepwise",
]
