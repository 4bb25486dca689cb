"""conversion: a trained torch ANN -> a :class:`~scttfs_brian.graph.Graph` (see docs/architecture.md).

:mod:`.api` :func:`convert`; :mod:`.trace` fx tracing and recording; :mod:`.rules` the one rule
table (module / function / method -> handler or refusal advice; :data:`SUPPORTED` is generated
from it); :mod:`.affine` affine expressions and BatchNorm folding (eq. 24); :mod:`.walker` the
walk over the fx graph; :mod:`.check` the reproduction check; :mod:`.kernels` kernels from
activations; :mod:`.checkpoint` ``state_dict`` files.
"""

from .api import convert
from .checkpoint import load_state_dict
from .kernels import (
    FIT_KINDS,
    ann_activations,
    code_from_activations,
    codes_from_activations,
    quantize_tables,
)
from .rules import RULES, SUPPORTED, Rule
from .walker import OUTPUT

__all__ = [
    "convert",
    "load_state_dict",
    "ann_activations",
    "code_from_activations",
    "codes_from_activations",
    "quantize_tables",
    "FIT_KINDS",
    "RULES",
    "SUPPORTED",
    "Rule",
    "OUTPUT",
]
