r"""Realized conversion error of a layer, split on the partition of eqs. 18-19.

:func:`error_decomposition` splits :math:`e = \sum_i |\mathrm{ReLU}(a_i) - z_i|` with
:math:`z = ` ``code.quantize(a)`` into the clipping error below the smallest decodable value
(:math:`e_{c,\min}`), the quantization error inside the range (:math:`e_q`) and the clipping error
above the largest decodable value (:math:`e_{c,\max}`). The bounds the paper writes for the same
terms are in :mod:`.bounds`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode
from .tables import Table

__all__ = [
    "ErrorTerms",
    "error_decomposition",
    "ErrorSweep",
    "error_sweep",
    "synthetic_activations",
    "scale_code",
    "as_activations",
    "check_code",
]


@dataclass(frozen=True)
class ErrorTerms:
    r"""The conversion error of one layer, split as in eqs. 18-19 (sums over neurons, not means).

    Attributes
    ----------
    e_c_min : float
        :math:`\sum |a - z|` over activations with ``0 < a < min_value`` (the ``L`` neurons;
        the code is silent there, so the term is :math:`\sum a`).
    e_q : float
        :math:`\sum |a - z|` over activations with ``min_value <= a <= max_value``.
    e_c_max : float
        :math:`\sum |a - z|` over activations with ``a > max_value`` (the ``U`` neurons).
    total : float
        :math:`\sum |\mathrm{ReLU}(a) - z|` over all neurons, summed independently of the terms
        (``total == e_c_min + e_q + e_c_max`` up to rounding of the sums).
    n_below, n_in_range, n_above, n_zero : int
        ``L``, the in-range count, ``U`` and the number of activations ``<= 0`` (zero error).
    min_value, max_value : float
        The code's smallest non-zero and largest decodable values.
    """

    e_c_min: float
    e_q: float
    e_c_max: float
    total: float
    n_below: int
    n_in_range: int
    n_above: int
    n_zero: int
    min_value: float
    max_value: float

    @property
    def n(self) -> int:
        """Number of neurons."""
        return self.n_below + self.n_in_range + self.n_above + self.n_zero

    @property
    def mean(self) -> float:
        """Mean absolute error per neuron, ``total / n``."""
        return self.total / self.n if self.n else 0.0


def as_activations(a: Any, name: str = "activations") -> np.ndarray:
    """``a`` (array_like or torch tensor, any shape) as a flat float64 numpy array; refuses
    NaN/inf with the count, naming ``name``."""
    if hasattr(a, "detach"):  # a torch tensor: analysis is numpy in
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (got {int(np.sum(~np.isfinite(arr)))} NaN/inf values)")
    return arr


def check_code(code: Any, owner: str = "") -> SCTTFSCode | TTFSCode:
    """``code`` if it is an :class:`SCTTFSCode` or a :class:`TTFSCode`; else a ``TypeError``
    (``owner`` is appended to the message, e.g. ``" for layer 'fc'"``)."""
    if not isinstance(code, (SCTTFSCode, TTFSCode)):
        raise TypeError(f"code must be an SCTTFSCode or a TTFSCode (got {type(code).__name__}){owner}")
    return code


def _decompose(a: np.ndarray, code: SCTTFSCode | TTFSCode) -> ErrorTerms:
    target = np.maximum(a, 0.0)
    err = np.abs(target - code.quantize(a))
    lo, hi = code.min_value, code.max_value
    zero = a <= 0
    below = (a > 0) & (a < lo)
    above = a > hi
    inside = ~(zero | below | above)
    return ErrorTerms(
        e_c_min=math.fsum(err[below]),
        e_q=math.fsum(err[inside]),
        e_c_max=math.fsum(err[above]),
        total=math.fsum(err),
        n_below=int(below.sum()),
        n_in_range=int(inside.sum()),
        n_above=int(above.sum()),
        n_zero=int(zero.sum()),
        min_value=float(lo),
        max_value=float(hi),
    )


def error_decomposition(activations: Any, code: Any) -> ErrorTerms | dict[str, ErrorTerms]:
    r"""Split the conversion error of ANN activations under a code into the terms of eqs. 18-19.

    Parameters
    ----------
    activations : array_like or dict of array_like
        ANN activations ``a`` of one layer (any shape; flattened), or ``{layer: activations}``.
        The ANN's activation is :math:`\mathrm{ReLU}(a)`, so the error is measured against
        ``max(a, 0)``: pre-activations may be passed as they are; negative values are silent in the
        SNN too and contribute nothing.
    code : SCTTFSCode or TTFSCode, or dict of codes
        The layer's code; with a dict of activations either one code for all layers or
        ``{layer: code}`` with a code for every layer.

    Returns
    -------
    ErrorTerms or dict of ErrorTerms
        With ``z = code.quantize(a)`` (the decoded value a receiving neuron sees, eqs. 16-17):

        * ``e_c_min = sum |a - z|`` over ``0 < a < code.min_value`` (``L`` neurons, clipped to 0);
        * ``e_c_max = sum |a - z|`` over ``a > code.max_value`` (``U`` neurons, clipped to the
          largest value: :math:`s(0)` for TTFS, :math:`s^e(0) + s^c(0)` for SC-TTFS);
        * ``e_q = sum |a - z|`` over the rest with ``a > 0`` (quantization inside the range).

    Notes
    -----
    Eqs. 18 and 19 state these three sums as upper bounds built from the step widths
    :math:`|s(f-1) - s(f)|` (:func:`~scttfs_brian.analysis.error_bounds` computes them as
    written); here each term is the realized error of the same partition of the
    neurons, so ``total`` (summed separately over all neurons with :func:`math.fsum`) equals
    ``e_c_min + e_q + e_c_max`` up to the rounding of three correctly rounded sums.
    Values exactly at ``min_value`` or ``max_value`` are in range (the stepwise rule fires at
    ``v >= theta``). Computed in float64.
    """
    if isinstance(activations, Mapping):
        out = {}
        for layer, a in activations.items():
            if isinstance(code, Mapping):
                if layer not in code:
                    raise KeyError(
                        f"no code for layer {layer!r}; codes are given for {sorted(code)}. "
                        "Pass one code for every layer, or a single code for all"
                    )
                layer_code = code[layer]
            else:
                layer_code = code
            owner = f" for layer {layer!r}"
            out[layer] = _decompose(
                as_activations(a, f"activations of layer {layer!r}"), check_code(layer_code, owner)
            )
        return out
    if isinstance(code, Mapping):
        raise TypeError("a dict of codes needs a dict of activations {layer: activations}")
    return _decompose(as_activations(activations), check_code(code))


def scale_code(code: Any, factor: float) -> SCTTFSCode | TTFSCode:
    """The same code with every kernel's ``alpha`` multiplied by ``factor > 0``.

    All thresholds, hence all decoded values, scale by ``factor``, and the spike times of
    ``factor * v`` are those of ``v`` (up to rounding at exact boundaries): a way to match a
    code's range to a layer's activations (e.g. ``factor = top / code.max_value``) without
    changing its shape. A simple data-based range, not the paper's Table 1 initialization.
    """
    code = check_code(code)
    if not (isinstance(factor, (int, float, np.floating)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be a finite number > 0 (got {factor!r})")

    def scaled(k: ThresholdKernel) -> ThresholdKernel:
        return ThresholdKernel(alpha=k.alpha * float(factor), beta=k.beta, k=k.k)

    if code.has_calibration:
        return SCTTFSCode(code.T, scaled(code.encode), scaled(code.calibrate))
    return TTFSCode(code.T, scaled(code.encode))


def synthetic_activations(distribution: str, size: int, *, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Non-negative synthetic activations for the error analysis (float64, reproducible).

    ``distribution``: ``"half-normal"`` (``|N(0, scale^2)|``, mean ``0.80 scale``),
    ``"exponential"`` (mean ``scale``) or ``"uniform"`` (on ``[0, 2 scale]``, mean ``scale``).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    rng = np.random.default_rng(seed)
    if distribution == "half-normal":
        return np.abs(rng.normal(0.0, scale, size))
    if distribution == "exponential":
        return rng.exponential(scale, size)
    if distribution == "uniform":
        return rng.uniform(0.0, 2.0 * scale, size)
    raise ValueError(f"distribution must be 'half-normal', 'exponential' or 'uniform' (got {distribution!r})")


@dataclass(frozen=True)
class ErrorSweep:
    """Error terms against the window length ``T`` for one or more codes on one activation sample.

    ``terms[name][j]`` is the :class:`ErrorTerms` of code ``name`` at ``Ts[j]``.
    """

    Ts: tuple[int, ...]
    terms: dict[str, tuple[ErrorTerms, ...]]

    def series(self, name: str, term: str) -> np.ndarray:
        """One term (``"e_c_min"``, ``"e_q"``, ``"e_c_max"``, ``"total"``, ``"mean"``...) of code
        ``name`` as an array over ``Ts``."""
        return np.array([getattr(e, term) for e in self.terms[name]], dtype=np.float64)

    def to_table(self, *, per_neuron: bool = True, title: str = "") -> Table:
        """Rows ``(T, code, e_c_min, e_q, e_c_max, total, L, U)``; errors divided by the number of
        neurons when ``per_neuron`` (the default)."""
        rows = []
        for j, T in enumerate(self.Ts):
            for name, seq in self.terms.items():
                e = seq[j]
                d = e.n if per_neuron and e.n else 1
                rows.append(
                    (T, name, e.e_c_min / d, e.e_q / d, e.e_c_max / d, e.total / d, e.n_below, e.n_above)
                )
        cols = ("T", "code", "e_c_min", "e_q", "e_c_max", "total", "L", "U")
        return Table(cols, tuple(rows), title)


def _default_codes() -> dict[str, Callable[[int], SCTTFSCode | TTFSCode]]:
    from ..coding import PRESETS

    enc, cal = PRESETS["cifar10"]
    return {"TTFS": lambda T: TTFSCode(T, enc), "SC-TTFS": lambda T: SCTTFSCode(T, enc, cal)}


def error_sweep(
    activations: Any,
    Ts: Iterable[int],
    make_code: Callable[[int], Any] | Mapping[str, Callable[[int], Any]] | None = None,
) -> ErrorSweep:
    """Error terms (eqs. 18-19) of ``activations`` for each window length in ``Ts``.

    Parameters
    ----------
    activations : array_like
        One sample of activations (flattened).
    Ts : iterable of int
        Window lengths.
    make_code : callable or dict of callables, optional
        ``T -> code``; a dict ``{name: T -> code}`` compares several codes. The default compares
        TTFS and SC-TTFS with the CIFAR10 kernels of Table 1, TTFS using the encoding kernel
        (the paper's comparison assumes the same mapping function for both, section 3.3).
    """
    a = as_activations(activations)
    Ts = tuple(int(T) for T in Ts)
    if make_code is None:
        makers = _default_codes()
    elif isinstance(make_code, Mapping):
        makers = dict(make_code)
    else:
        makers = {"code": make_code}
    terms = {
        name: tuple(_decompose(a, check_code(mk(T), f" from make_code at T={T}")) for T in Ts)
        for name, mk in makers.items()
    }
    return ErrorSweep(Ts, terms)
