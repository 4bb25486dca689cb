r"""Analysis of the SC-TTFS code: conversion error (eqs. 18-19), code capacity ``N(T)``, energy (eq. 25).

Pure functions: numpy arrays and codes in, frozen dataclasses out. Only :func:`layer_errors` runs
a network (the torch engine, through ``snn.functional``).

* :func:`error_bounds`: the terms of eqs. 18 (TTFS) and 19 (SC-TTFS) as the paper writes them
  (bounds from the step widths and the clip terms) next to the realized errors on the same
  partition of the neurons (:mod:`.bounds`);
* :func:`error_decomposition`, :func:`error_sweep`: the realized terms alone, and against ``T``
  (:mod:`.errors`);
* :func:`layer_errors`: the error accumulated through a converted network, layer by layer
  (:mod:`.layers`);
* :func:`code_capacity`, :func:`capacity_table`: the paper's :math:`N(T) = T(T+3)/2` against the
  words real kernels reach (:mod:`.capacity`);
* :func:`energy`, :func:`energy_table`: eq. 25, :math:`E = N E_i + L E_l` (:mod:`.energy`);
* :class:`Table`: the one output format (markdown, CSV) (:mod:`.tables`).
"""

from .bounds import ErrorBounds, error_bounds
from .capacity import DISTINCT_RTOL, CodeCapacity, capacity_table, code_capacity, distinct_count
from .energy import (
    PLATFORMS,
    EnergyTable,
    MethodResult,
    energy,
    energy_table,
    load_method_results,
    method_energy_table,
)
from .errors import (
    ErrorSweep,
    ErrorTerms,
    error_decomposition,
    error_sweep,
    scale_code,
    synthetic_activations,
)
from .layers import LayerError, NetworkErrors, layer_errors
from .tables import Table

__all__ = [
    "ErrorTerms",
    "error_decomposition",
    "ErrorSweep",
    "error_sweep",
    "synthetic_activations",
    "scale_code",
    "ErrorBounds",
    "error_bounds",
    "LayerError",
    "NetworkErrors",
    "layer_errors",
    "DISTINCT_RTOL",
    "CodeCapacity",
    "code_capacity",
    "distinct_count",
    "capacity_table",
    "PLATFORMS",
    "energy",
    "EnergyTable",
    "energy_table",
    "MethodResult",
    "load_method_results",
    "method_energy_table",
    "Table",
]
