r"""Analysis of the SC-TTFS code: conversion error (eqs. 18-19), code capacity ``N(T)``, energy (eq. 25).

Pure functions: numpy arrays and codes in, frozen dataclasses out. Nothing here runs a network.

* :func:`error_decomposition` splits the conversion error of a layer,
  :math:`e = \sum_i |\mathrm{ReLU}(a_i) - z_i|` with :math:`z = ` ``code.quantize(a)``, into the
  clipping error below the smallest decodable value (:math:`e_{c,\min}`), the quantization error
  inside the range (:math:`e_q`) and the clipping error above the largest decodable value
  (:math:`e_{c,\max}`), as in eqs. 18 (TTFS) and 19 (SC-TTFS).
* :func:`code_capacity` counts the code words: the paper's
  :math:`N(T) = \sum_{i=1}^{T} (i+1) = T(T+3)/2`, the words reachable with given kernels and the
  distinct non-zero decoded values.
* :func:`energy` and :func:`energy_table` evaluate eq. 25, :math:`E = N E_i + L E_l`, with the
  normalization that reproduces the paper's "about 80 %" (see :func:`energy_table`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .coding import SCTTFSCode, ThresholdKernel, TTFSCode

__all__ = [
    "ErrorTerms",
    "error_decomposition",
    "ErrorSweep",
    "error_sweep",
    "synthetic_activations",
    "scale_code",
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

#: Relative tolerance under which two decoded values count as the same value.
DISTINCT_RTOL = 1e-12

#: Energy weights ``(E_i, E_l)`` per platform (eq. 25, after the paper's ref. [33]):
#: ``E_i`` weighs the spike count (computation and routing), ``E_l`` the latency (static energy).
PLATFORMS: dict[str, tuple[float, float]] = {
    "truenorth": (0.4, 0.6),
    "spinnaker": (0.64, 0.36),
}


# --------------------------------------------------------------------------------------------
# Tables: the one output format of the analysis (markdown for READMEs, CSV for tools)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A small rectangular table: column names and rows of plain values.

    ``None`` cells are written as empty (CSV) or an em dash (markdown).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    title: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "rows", tuple(tuple(r) for r in self.rows))
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(
                    f"row {r!r} has {len(r)} cells but the table has {len(self.columns)} columns"
                )

    def column(self, name: str) -> list:
        """The values of column ``name``."""
        j = self.columns.index(name)
        return [r[j] for r in self.rows]

    def to_markdown(self, floatfmt: str = ".4g") -> str:
        def cell(x: Any) -> str:
            if x is None:
                return "—"
            if isinstance(x, float):
                return format(x, floatfmt)
            return str(x)

        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for r in self.rows:
            writer.writerow(["" if x is None else repr(x) if isinstance(x, float) else x for x in r])
        return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Error decomposition (eqs. 18-19)
# --------------------------------------------------------------------------------------------
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


def _activations(a: Any, name: str = "activations") -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor: analysis is numpy in
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (got {int(np.sum(~np.isfinite(arr)))} NaN/inf values)")
    return arr


def _check_code(code: Any, owner: str = "") -> SCTTFSCode | TTFSCode:
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
    :math:`|s(f-1) - s(f)|`; here each term is the realized error of the same partition of the
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
                _activations(a, f"activations of layer {layer!r}"), _check_code(layer_code, owner)
            )
        return out
    if isinstance(code, Mapping):
        raise TypeError("a dict of codes needs a dict of activations {layer: activations}")
    return _decompose(_activations(activations), _check_code(code))


def scale_code(code: Any, factor: float) -> SCTTFSCode | TTFSCode:
    """The same code with every kernel's ``alpha`` multiplied by ``factor > 0``.

    All thresholds, hence all decoded values, scale by ``factor``, and the spike times of
    ``factor * v`` are those of ``v`` (up to rounding at exact boundaries): a way to match a
    code's range to a layer's activations (e.g. ``factor = top / code.max_value``) without
    changing its shape. A simple data-based range, not the paper's Table 1 initialization.
    """
    code = _check_code(code)
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
    from .coding import PRESETS

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
    a = _activations(activations)
    Ts = tuple(int(T) for T in Ts)
    if make_code is None:
        makers = _default_codes()
    elif isinstance(make_code, Mapping):
        makers = dict(make_code)
    else:
        makers = {"code": make_code}
    terms = {
        name: tuple(_decompose(a, _check_code(mk(T), f" from make_code at T={T}")) for T in Ts)
        for name, mk in makers.items()
    }
    return ErrorSweep(Ts, terms)


# --------------------------------------------------------------------------------------------
# Code capacity N(T)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeCapacity:
    """How many values a code can send in one window.

    Attributes
    ----------
    T : int
        Window length.
    paper_N : int
        The paper's count: :math:`N(T) = \\sum_{i=1}^T (i+1) = T(T+3)/2` for SC-TTFS, ``T`` for TTFS.
    admissible : int
        Spike sequences allowed by eqs. 9-13 (``t_cal >= t_enc``), silence excluded (``== paper_N``).
    reachable : int
        Sequences that some potential produces with these kernels (``len(code.codebook()) - 1``).
    distinct_values : int
        Distinct non-zero decoded values of the reachable sequences (relative tolerance ``rtol``).
    admissible_distinct : int
        Distinct non-zero decoded values of all admissible sequences.
    ttfs_N : int
        The TTFS count ``T`` for comparison.
    rtol : float
        Tolerance used for "distinct".
    """

    T: int
    paper_N: int
    admissible: int
    reachable: int
    distinct_values: int
    admissible_distinct: int
    ttfs_N: int
    rtol: float


def distinct_count(values: Any, rtol: float = DISTINCT_RTOL) -> int:
    """Number of distinct values: sorted neighbours closer than ``rtol`` times the larger
    magnitude count once."""
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if v.size == 0:
        return 0
    gaps = np.diff(v) > rtol * np.maximum(np.abs(v[1:]), np.abs(v[:-1]))
    return int(1 + np.count_nonzero(gaps))


def code_capacity(code: Any, rtol: float = DISTINCT_RTOL) -> CodeCapacity:
    """Count the code words of ``code`` (section 3.3, :math:`N(T)`).

    The paper's :math:`N(T) = T(T+3)/2` counts every admissible pair ``(t_enc, t_cal)``; with
    decreasing kernels some are unreachable: after encoding at ``t >= 1`` the residual is below
    ``theta_e(t-1) - theta_e(t)``, so a calibration needs ``theta_c(s)`` below that gap
    (:meth:`SCTTFSCode.codebook`). Reachable words never share a value: two words with
    different ``t_enc`` would need ``theta_c(s') - theta_c(s) = theta_e(t) - theta_e(t')
    >= theta_e(t'-1) - theta_e(t')``, more than the reachable calibration ``theta_c(s')`` — so
    ``distinct_values == reachable`` up to floating-point coincidences within ``rtol``.
    Unreachable admissible words can coincide (``admissible_distinct``).
    """
    code = _check_code(code)
    T = code.T
    paper_N = T * (T + 3) // 2 if code.has_calibration else T
    words = code.codebook()[1:]  # silence excluded
    admissible = code.codebook(include_unreachable=True)[1:]
    return CodeCapacity(
        T=T,
        paper_N=paper_N,
        admissible=len(admissible),
        reachable=len(words),
        distinct_values=distinct_count([w.value for w in words], rtol),
        admissible_distinct=distinct_count([w.value for w in admissible], rtol),
        ttfs_N=T,
        rtol=rtol,
    )


def capacity_table(
    Ts: Iterable[int] = range(1, 11),
    kernels: Mapping[str, tuple[ThresholdKernel, ThresholdKernel]] | None = None,
    rtol: float = DISTINCT_RTOL,
) -> Table:
    """Code capacity for each ``T`` and each kernel pair: columns ``T``, ``N(T)`` (paper),
    ``TTFS (T)``, then ``reachable <name>`` and ``distinct <name>`` per kernel pair.

    ``kernels`` maps a name to ``(encode, calibrate)``; the default is Table 1 (``PRESETS``).
    """
    if kernels is None:
        from .coding import PRESETS

        kernels = PRESETS
    cols = ["T", "N(T) paper", "TTFS T"]
    for name in kernels:
        cols += [f"reachable {name}", f"distinct {name}"]
    rows = []
    for T in Ts:
        caps = [code_capacity(SCTTFSCode(int(T), enc, cal), rtol) for enc, cal in kernels.values()]
        row = [int(T), T * (T + 3) // 2, int(T)]
        for c in caps:
            row += [c.reachable, c.distinct_values]
        rows.append(tuple(row))
    return Table(tuple(cols), tuple(rows), "Code capacity (silence excluded)")


# --------------------------------------------------------------------------------------------
# Energy (eq. 25)
# --------------------------------------------------------------------------------------------
def _platform(platform: str | tuple[float, float]) -> tuple[float, float]:
    if isinstance(platform, str):
        key = platform.lower()
        if key not in PLATFORMS:
            raise ValueError(
                f"platform must be one of {sorted(PLATFORMS)} or a pair (E_i, E_l) (got {platform!r})"
            )
        return PLATFORMS[key]
    e_i, e_l = (float(x) for x in platform)
    return e_i, e_l


def energy(
    spikes: Any,
    latency: Any,
    platform: str | tuple[float, float],
    *,
    spikes_scale: float = 1.0,
    latency_scale: float = 1.0,
) -> Any:
    r"""Energy estimate of eq. 25, :math:`E = N E_i + L E_l`.

    Parameters
    ----------
    spikes : float or array_like
        ``N``, spikes per image.
    latency : float or array_like
        ``L``, inference latency in time steps.
    platform : str or (float, float)
        ``"truenorth"`` (``E_i, E_l = 0.4, 0.6``), ``"spinnaker"`` (``0.64, 0.36``) or a pair.
    spikes_scale, latency_scale : float
        ``N`` and ``L`` are divided by these before weighting (1 = raw eq. 25; see
        :func:`energy_table` for the normalization that reproduces the paper).

    Returns
    -------
    float or ndarray
        ``(N / spikes_scale) * E_i + (L / latency_scale) * E_l``.
    """
    e_i, e_l = _platform(platform)
    n = np.asarray(spikes, dtype=np.float64) / spikes_scale
    lat = np.asarray(latency, dtype=np.float64) / latency_scale
    out = n * e_i + lat * e_l
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class EnergyTable:
    """Normalized energies of several methods on every platform of :data:`PLATFORMS`.

    ``energies[platform][j]`` belongs to ``names[j]``. ``spikes_scale`` / ``latency_scale``
    are the divisors of ``N`` and ``L`` (see :func:`energy_table`).
    """

    names: tuple[str, ...]
    spikes: np.ndarray
    latency: np.ndarray
    normalization: str
    spikes_scale: float
    latency_scale: float
    energies: dict[str, np.ndarray]

    def energy_of(self, name: str, platform: str) -> float:
        return float(self.energies[platform][self._index(name)])

    def improvement(self, name: str, reference: str, platform: str) -> float:
        """Energy saved by ``name`` relative to ``reference``: ``1 - E_name / E_reference``
        (the paper's "energy efficiency improved by about 80 %")."""
        return 1.0 - self.energy_of(name, platform) / self.energy_of(reference, platform)

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no method named {name!r}; the table holds {list(self.names)}")
        return self.names.index(name)

    def to_table(self, title: str = "") -> Table:
        plats = list(self.energies)
        cols = ("method", "spikes", "latency", *(f"E {p}" for p in plats))
        rows = [
            (n, float(self.spikes[j]), float(self.latency[j]), *(float(self.energies[p][j]) for p in plats))
            for j, n in enumerate(self.names)
        ]
        return Table(cols, tuple(rows), title)


def energy_table(methods: Iterable[tuple[str, float, float]], normalization: str = "max") -> EnergyTable:
    r"""Eq. 25 for several methods, normalized, on TrueNorth and SpiNNaker.

    Parameters
    ----------
    methods : iterable of (name, spikes, latency)
        ``spikes`` per image and ``latency`` in steps (rows without a spike count must be left out).
    normalization : {"max", "sum", "none"}
        How ``N`` and ``L`` are made comparable before weighting:

        * ``"max"`` (default): each divided by its maximum over ``methods``,
          :math:`E_m = E_i N_m / \max_j N_j + E_l L_m / \max_j L_j`;
        * ``"sum"``: each divided by its sum over ``methods``;
        * ``"none"``: raw eq. 25 (spikes in the millions swamp latencies in the hundreds).

    Notes
    -----
    The paper says only that the estimates were "normalized". Normalizing ``N`` and ``L``
    separately over all methods of a table before weighting reproduces its claim: on VGG16,
    CIFAR10 (Table 2, all rows with a spike count), SC-TTFS saves 83.4 % (TrueNorth) and 82.3 %
    (SpiNNaker) of TTFS(2020)'s energy, on CIFAR100 (Table 3) 80.8 % and 79.7 %: "about 80 %".
    Raw eq. 25 would make SC-TTFS (2.5x the spikes) 150 % costlier, and normalizing over the
    two methods alone gives 34.6 % (TrueNorth) and -13.9 % (SpiNNaker) on Table 2
    (``analysis/README.md`` lists all variants, computed by ``analysis/write_tables.py``).
    """
    rows = [(str(n), float(s), float(lat)) for n, s, lat in methods]
    if not rows:
        raise ValueError("energy_table needs at least one (name, spikes, latency) row")
    names = tuple(r[0] for r in rows)
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique (got {list(names)})")
    spikes = np.array([r[1] for r in rows])
    latency = np.array([r[2] for r in rows])
    if not (np.all(np.isfinite(spikes)) and np.all(np.isfinite(latency))):
        raise ValueError("spikes and latency must be finite numbers; leave out methods without a spike count")
    if normalization == "max":
        s_scale, l_scale = float(spikes.max()), float(latency.max())
    elif normalization == "sum":
        s_scale, l_scale = float(spikes.sum()), float(latency.sum())
    elif normalization == "none":
        s_scale, l_scale = 1.0, 1.0
    else:
        raise ValueError(f"normalization must be 'max', 'sum' or 'none' (got {normalization!r})")
    if s_scale <= 0 or l_scale <= 0:
        raise ValueError("spikes and latency must not all be zero")
    energies = {
        p: np.asarray(energy(spikes, latency, p, spikes_scale=s_scale, latency_scale=l_scale))
        for p in PLATFORMS
    }
    return EnergyTable(names, spikes, latency, normalization, s_scale, l_scale, energies)


# --------------------------------------------------------------------------------------------
# The paper's comparison tables (Tables 2 and 3) as data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodResult:
    """One row of the paper's Table 2 or 3. Missing numbers are ``None``.

    ``latency_lower_bound`` is True where the paper prints "more than" (大于) the latency.
    ``spikes`` is per image (not in millions).
    """

    table: int
    dataset: str
    network: str
    method: str
    ref: int | None
    ann_acc: float | None
    snn_acc: float | None
    loss: float | None
    latency: float | None
    latency_lower_bound: bool
    spikes: float | None
    note: str

    @property
    def label(self) -> str:
        return f"{self.method} [{self.ref}]" if self.ref is not None else self.method


def _num(x: str) -> float | None:
    x = x.strip()
    return None if x == "" else float(x)


def load_method_results(path: str | Path) -> tuple[MethodResult, ...]:
    """Read the paper's Tables 2-3 from a CSV file (``figures/data/paper_tables.csv``).

    Columns: ``table, dataset, network, method, ref, ann_acc, snn_acc, loss, latency,
    spikes_millions, note``; an empty cell is a missing number, a latency written ``>512`` is a
    lower bound, ``spikes_millions`` is the paper's count in units of 10^6.
    """
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for line_no, rec in enumerate(csv.DictReader(fh), start=2):
            try:
                lat = rec["latency"].strip()
                bound = lat.startswith(">")
                spikes_m = _num(rec["spikes_millions"])
                out.append(
                    MethodResult(
                        table=int(rec["table"]),
                        dataset=rec["dataset"].strip(),
                        network=rec["network"].strip(),
                        method=rec["method"].strip(),
                        ref=int(rec["ref"]) if rec["ref"].strip() else None,
                        ann_acc=_num(rec["ann_acc"]),
                        snn_acc=_num(rec["snn_acc"]),
                        loss=_num(rec["loss"]),
                        latency=_num(lat.lstrip(">")),
                        latency_lower_bound=bound,
                        spikes=None if spikes_m is None else spikes_m * 1e6,
                        note=(rec.get("note") or "").strip(),
                    )
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}, line {line_no}: cannot read the row {rec!r} ({exc})") from exc
    return tuple(out)


def method_energy_table(results: Sequence[MethodResult], normalization: str = "max") -> EnergyTable:
    """:func:`energy_table` of the rows that have both a spike count and an exact latency,
    named ``"<network> <method> [ref]"``."""
    rows = [
        (f"{r.network} {r.label}", r.spikes, r.latency)
        for r in results
        if r.spikes is not None and r.latency is not None and not r.latency_lower_bound
    ]
    return energy_table(rows, normalization)
