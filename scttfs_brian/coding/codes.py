r"""The SC-TTFS and TTFS codes: the one definition of the spike rule (eqs. 9-17).

A threshold kernel is (eq. 14)

.. math:: \theta(t) = \alpha \, e^{-k t + \beta}, \qquad \alpha > 0,\ k > 0,

evaluated at the integer steps ``t = 0, 1, ..., T-1`` of a coding window of ``T`` steps.
An SC-TTFS layer has two kernels, encoding :math:`\theta_e` and calibration :math:`\theta_c`.
For a neuron whose potential at the start of its window is ``v``, step by step:

1. encoding (eqs. 9-11): the first step with ``v >= theta_e(t)`` emits the encoding spike
   ``t_enc = t`` and resets subtractively, ``v <- v - theta_e(t)``;
2. calibration (eqs. 12-13): from the encoding step on (the same step included), the first step
   with ``v >= theta_c(t)`` emits the calibration spike ``t_cal = t``; then ``v <- 0`` and the
   neuron is silent until the window ends.

No encoding spike by ``T-1`` means silence (eq. 10); no calibration by ``T-1`` means none
(eq. 13). A receiving neuron decodes (eqs. 16-17) ``z = theta_e(t_enc) + theta_c(t_cal)``, each
term 0 when the spike is absent. TTFS (the T2FSNN-style baseline) is the same with one kernel,
one spike and no calibration.

The threshold values are computed once per code as a float64 lookup table
(:meth:`ThresholdKernel.table`), the lookup table the paper suggests for hardware (section 3.3).
Every engine (numpy and torch here, Brian2 in :mod:`scttfs_brian.brian.neurons`) reads that same table,
which is what makes them agree spike for spike. Decisions are made in the dtype of the
potentials (float64 or float32), the table being cast to it.

Spike times are integer arrays with ``-1`` for "no spike" (the paper's ``t = inf``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "ThresholdKernel",
    "SCTTFSCode",
    "TTFSCode",
    "Code",
    "CodeWord",
    "closed_form_time",
    "NO_SPIKE",
    "torch_table",
    "stepwise_spike_times",
    "compiled_stepwise",
    "Boundaries",
    "spike_boundaries",
    "compiled_lookup",
    "PRESETS",
    "CODE_KINDS",
    "code_from_dict",
    "as_potentials",
    "CodeBase",
]

#: Spike time meaning "no spike in this window" (the paper's ``t = inf``).
NO_SPIKE = -1


def _real(name: str, value: Any, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (got {value!r} of type {type(value).__name__}) {owner}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite (got {value}) {owner}")
    return value


@dataclass(frozen=True)
class ThresholdKernel:
    r"""Exponentially decaying threshold :math:`\theta(t) = \alpha e^{-k t + \beta}` (eq. 14).

    Parameters
    ----------
    alpha : float
        Amplitude, ``> 0`` (same unit as the membrane potential).
    beta : float
        Offset in the exponent, any finite real (:math:`\theta(0) = \alpha e^{\beta}`).
    k : float
        Decay per time step, ``> 0`` (so the threshold falls and larger potentials spike earlier).
    """

    alpha: float
    beta: float
    k: float

    def __post_init__(self) -> None:
        owner = "for a ThresholdKernel"
        for name in ("alpha", "beta", "k"):
            object.__setattr__(self, name, _real(name, getattr(self, name), owner))
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0 (got {self.alpha}) {owner}; the threshold must be positive")
        if self.k <= 0:
            raise ValueError(f"k must be > 0 (got {self.k}) {owner}; the threshold must decay over the window")

    def table(self, T: int) -> np.ndarray:
        """The float64 threshold values ``theta(0), ..., theta(T-1)``: the lookup table every
        engine uses (one computation, so the engines agree to the last bit)."""
        T = _window(T)
        return self.alpha * np.exp(-self.k * np.arange(T, dtype=np.float64) + self.beta)

    def __call__(self, t: Any) -> np.ndarray:
        """``theta(t)`` for real ``t`` (analysis and plots; spike decisions use :meth:`table`)."""
        return self.alpha * np.exp(-self.k * np.asarray(t, dtype=np.float64) + self.beta)


def _window(T: Any) -> int:
    if isinstance(T, bool) or not isinstance(T, numbers.Integral):
        raise TypeError(f"T must be an integer number of time steps (got {T!r} of type {type(T).__name__})")
    if T < 1:
        raise ValueError(f"T must be >= 1 time step (got {T}); the coding window needs at least one step")
    return int(T)


class CodeWord(NamedTuple):
    """One spike sequence of a code: spike times (``-1`` = absent) and its decoded value."""

    t_enc: int
    t_cal: int
    value: float


def _is_torch(x: Any) -> bool:
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_module():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but coding.py works without it
        return None
    return torch


def torch_table(table: np.ndarray, dtype, device):
    """A code's lookup table as a torch tensor of ``dtype`` on ``device`` (a copy)."""
    torch = _torch_module()
    return torch.from_numpy(np.array(table, dtype=np.float64)).to(device=device, dtype=dtype)


def as_potentials(v: Any, name: str = "v") -> Any:
    """Validate potentials: numpy/torch float32/float64 (ints and lists are converted to float64)."""
    if _is_torch(v):
        torch = _torch_module()
        if v.is_complex() or v.dtype == torch.bool:
            raise TypeError(f"{name} must be a real float tensor (got dtype {v.dtype})")
        if not v.is_floating_point():
            v = v.to(torch.float64)
        elif v.dtype not in (torch.float32, torch.float64):
            v = v.to(torch.float32)
        if not _all_finite(v):
            bad = ~torch.isfinite(v)
            idx = int(torch.nonzero(bad.reshape(-1))[0])
            raise ValueError(
                f"{name} must be finite (got {v.reshape(-1)[idx].item()} at flat index {idx}); "
                "remove NaN/inf potentials before encoding"
            )
        return v
    if isinstance(v, (str, bytes)) or v is None:
        raise TypeError(f"{name} must be a number, a numpy array or a torch tensor (got {type(v).__name__})")
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers (got a {type(v).__name__} of dtype {arr.dtype})")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        idx = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(
            f"{name} must be finite (got {arr.reshape(-1)[idx]} at flat index {idx}); "
            "remove NaN/inf potentials before encoding"
        )
    return arr


def _stepwise_torch(v, tab_e, tab_c, dec_e, dec_c):
    """The stepwise rule on a torch tensor, written as straight-line tensor code so that
    ``torch.compile`` can fuse it into one pass over the potentials (:func:`compiled_stepwise`).

    ``tab_e``/``tab_c``: thresholds in ``v``'s dtype (``tab_c=None``: TTFS). Returns ``t_enc``,
    ``t_cal`` as tensors of ``v``'s dtype (``-1`` = no spike) and, when the float64 decoding
    tables ``dec_e``/``dec_c`` are given, the decoded value ``dec_e[t_enc] + dec_c[t_cal]`` in
    ``v``'s dtype (else ``None``), which is exactly :meth:`CodeBase.decode` cast to ``v``'s dtype.
    """
    torch = _torch_module()
    t_enc = torch.full_like(v, NO_SPIKE)
    t_cal = torch.full_like(v, NO_SPIKE)
    z_e = z_c = None
    if dec_e is not None:
        z_e = torch.zeros_like(v, dtype=dec_e.dtype)
        z_c = torch.zeros_like(v, dtype=dec_e.dtype)
    for t in range(tab_e.shape[0]):
        fire_e = (t_enc < 0) & (v >= tab_e[t])
        t_enc = torch.where(fire_e, float(t), t_enc)
        v = torch.where(fire_e, v - tab_e[t], v)  # subtractive reset, eq. 11
        if z_e is not None:
            z_e = torch.where(fire_e, dec_e[t], z_e)
        if tab_c is not None:
            fire_c = (t_enc >= 0) & (t_cal < 0) & (v >= tab_c[t])
            t_cal = torch.where(fire_c, float(t), t_cal)  # then silent until the window ends
            if z_c is not None:
                z_c = torch.where(fire_c, dec_c[t], z_c)
    z = (z_e + z_c).to(v.dtype) if z_e is not None else None
    return t_enc, t_cal, z


_COMPILED = None


def compiled_stepwise():
    """:func:`_stepwise_torch` compiled by ``torch.compile`` (inductor): one fused loop over the
    potentials instead of ``~6 T`` tensor passes. It runs the same comparisons and subtractions
    in the same dtype, so its results are identical (tested); the first call for a new ``T`` or
    dtype compiles (seconds, needs a C++ compiler), later calls and other shapes reuse it."""
    global _COMPILED
    if _COMPILED is None:
        torch = _torch_module()
        _COMPILED = torch.compile(_stepwise_torch, dynamic=True)
    return _COMPILED


def stepwise_spike_times(v: Any, table_e: Any, table_c: Any | None = None):
    """The stepwise rule of SPEC section 1 (eqs. 9-13) on given threshold tables.

    ``v``: numpy array or torch tensor (validated by the caller); ``table_e``/``table_c``: the
    thresholds at steps ``0..T-1`` (numpy arrays, or torch tensors for trainable kernels);
    ``table_c=None`` is TTFS. Decisions are made in ``v``'s dtype. Returns int64 ``(t_enc, t_cal)``
    of ``v``'s shape and kind, ``-1`` = no spike. Codes call this; the torch twin's trainable
    activation calls it with tables computed from its parameters.
    """
    if _is_torch(v):
        torch = _torch_module()

        def as_table(tab):
            if isinstance(tab, torch.Tensor):
                return tab.detach().to(device=v.device, dtype=v.dtype)
            return torch_table(tab, v.dtype, v.device)

        tab_c = as_table(table_c) if table_c is not None else None
        t_enc, t_cal, _ = _stepwise_torch(v.detach(), as_table(table_e), tab_c, None, None)
        return t_enc.to(torch.int64), t_cal.to(torch.int64)
    v = np.array(v, copy=True)
    tab_e = np.asarray(table_e, dtype=np.float64).astype(v.dtype)
    tab_c = np.asarray(table_c, dtype=np.float64).astype(v.dtype) if table_c is not None else None
    t_enc = np.full(v.shape, NO_SPIKE, dtype=np.int64)
    t_cal = np.full(v.shape, NO_SPIKE, dtype=np.int64)
    for t in range(len(tab_e)):
        fire_e = (t_enc < 0) & (v >= tab_e[t])
        t_enc[fire_e] = t
        v[fire_e] = v[fire_e] - tab_e[t]  # subtractive reset, eq. 11
        if tab_c is not None:
            fire_c = (t_enc >= 0) & (t_cal < 0) & (v >= tab_c[t])
            t_cal[fire_c] = t  # then silent: the residual is discarded (v <- 0)
    return t_enc, t_cal


# --- the fast exact path: codeword boundaries derived from the stepwise rule ------------------
# (t_enc, t_cal) is a monotone step function of v: the tables do not increase with t, so a larger
# potential encodes no later, and within one encoding step the residual v - theta_e(t_enc) (one
# rounded subtraction, monotone in v) calibrates no later. Each codeword is therefore an interval
# of potentials, and the smallest potential of each (found once per code and dtype by bisection
# over every float of the dtype, the stepwise rule itself deciding) turns the T-step loop into
# "how many boundaries are <= v" and a lookup of that word's spike times and decoded value.


class Boundaries(NamedTuple):
    """The stepwise rule of one code in one dtype as intervals of potentials (:func:`spike_boundaries`).

    ``bounds``: strictly increasing potentials (numpy, of the dtype); the word of a potential
    ``v`` is ``w = #{j: v >= bounds[j]}`` (``searchsorted(bounds, v, side='right')`` for non-NaN
    ``v``; NaN compares false everywhere: word 0, silence, as in the rule). ``t_enc``, ``t_cal``
    (int64) and ``value`` (float64, ``decode(t_enc, t_cal)``) are indexed by the word.
    """

    bounds: np.ndarray
    t_enc: np.ndarray
    t_cal: np.ndarray
    value: np.ndarray


def _ordered(x: np.ndarray) -> np.ndarray:
    """Floats to int64 keys in the same order (``-0.0`` and ``+0.0`` both 0), for bisection over
    every float of the dtype."""
    bits = np.int32 if x.dtype == np.float32 else np.int64
    i = x.view(bits).astype(np.int64)
    return np.where(i < 0, -(i & np.iinfo(bits).max), i)


def _from_ordered(i: np.ndarray, dtype) -> np.ndarray:
    bits = np.int32 if np.dtype(dtype) == np.float32 else np.int64
    return np.where(i < 0, (-i) | np.iinfo(bits).min, i).astype(bits).view(dtype)


def _neighbours(x: np.ndarray, ulps: int) -> np.ndarray:
    """``x`` and its ``ulps`` float neighbours either way (finite ones only)."""
    dtype = x.dtype
    fmax = np.finfo(dtype).max
    keys = _ordered(x[np.isfinite(x)])
    lim = int(_ordered(np.array([fmax], dtype))[0])
    out = np.concatenate([keys + d for d in range(-ulps, ulps + 1)])
    return _from_ordered(np.clip(out, -lim, lim), dtype)


def spike_boundaries(table_e: Any, table_c: Any | None, dtype) -> Boundaries:
    """Derive :class:`Boundaries` of the stepwise rule (:func:`stepwise_spike_times`) on these
    tables for potentials of ``dtype`` (float32 or float64): one bisection per admissible codeword
    over every float of ``dtype``, the rule itself deciding, then a check of the result.

    Raises ``RuntimeError`` when the rule is not a monotone step function of ``v`` for these
    tables (the tables, cast to ``dtype``, increase somewhere, or the check below fails): the
    codebook lookup would then be wrong, and callers fall back to the stepwise loop.

    The check evaluates the rule at every boundary and its 4 float neighbours either way, at
    ``+-0``, ``+-max``, ``+-inf``, NaN and the smallest subnormals, and compares with the lookup.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"codeword boundaries are derived for float32 and float64 (got {dtype})")
    tab_e = np.asarray(table_e, dtype=np.float64).astype(dtype)
    tab_c = None if table_c is None else np.asarray(table_c, dtype=np.float64).astype(dtype)
    T = len(tab_e)
    for name, tab in (("theta_e", tab_e), ("theta_c", tab_c)):
        if tab is not None and (np.any(np.diff(tab) > 0) or np.any(np.isnan(tab))):
            raise RuntimeError(
                f"{name} in {dtype} increases with t ({tab.tolist()}): the stepwise rule is then not monotone "
                "in v and has no codeword boundaries; use the stepwise loop"
            )
    # the admissible words in increasing order of potential: silence, then for t_enc = T-1 .. 0:
    # no calibration, then calibration at T-1 .. t_enc (a larger residual calibrates earlier)
    words = [(NO_SPIKE, NO_SPIKE)]
    for t in range(T - 1, -1, -1):
        words.append((t, NO_SPIKE))
        if tab_c is not None:
            words += [(t, s) for s in range(T - 1, t - 1, -1)]
    w_enc = np.array([w[0] for w in words], dtype=np.int64)
    w_cal = np.array([w[1] for w in words], dtype=np.int64)
    index = np.full((T + 1, T + 1), -1, dtype=np.int64)
    index[w_enc + 1, w_cal + 1] = np.arange(len(words))

    def rank(v):
        t_enc, t_cal = stepwise_spike_times(np.asarray(v, dtype=dtype), tab_e, tab_c)
        r = index[t_enc + 1, t_cal + 1]
        if np.any(r < 0):  # pragma: no cover - the rule only emits admissible words
            raise RuntimeError("the stepwise rule produced an inadmissible spike sequence")
        return r

    fmax = np.finfo(dtype).max
    ext = np.array([-fmax, fmax], dtype=dtype)
    r_lo, r_hi = rank(ext)
    if r_lo != 0:
        raise RuntimeError(f"the most negative {dtype} potential spikes ({words[r_lo]}): no boundaries")
    # bisection on the ordered keys: rank(lo) < r <= rank(hi) for every word r reachable by a finite float
    r = np.arange(1, r_hi + 1)
    lo = np.full(len(r), _ordered(ext[:1])[0])
    hi = np.full(len(r), _ordered(ext[1:])[0])
    for _ in range(8 * dtype.itemsize + 2):
        if np.all(hi // 2 - lo // 2 <= 1) and np.all(hi - lo <= 1):
            break
        mid = lo // 2 + hi // 2 + (lo % 2 + hi % 2) // 2  # floor((lo + hi) / 2) without overflow
        ok = rank(_from_ordered(mid, dtype)) >= r
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    if not (np.all(hi - lo == 1) and np.all(rank(_from_ordered(hi, dtype)) >= r)
            and np.all(rank(_from_ordered(lo, dtype)) < r)):  # fmt: skip
        raise RuntimeError("bisection of the codeword boundaries did not converge")
    b = _from_ordered(hi, dtype)
    if np.any(b[1:] < b[:-1]):
        raise RuntimeError("the codeword boundaries are not ordered: the stepwise rule is not monotone in v")
    # word r (1..r_hi) is produced iff its boundary is below the next word's (else v >= b_r
    # implies v >= b_{r+1}); silence is produced by -max. +inf may reach one word above r_hi.
    keep = np.append(b[:-1] < b[1:], True) if len(b) else np.zeros(0, bool)
    kept = np.concatenate([[0], r[keep]]).astype(np.int64)
    bounds = b[keep]
    r_inf = int(rank(np.array([np.inf], dtype))[0])
    if r_inf != r_hi:
        kept = np.append(kept, r_inf)
        bounds = np.append(bounds, np.array([np.inf], dtype))
    value = np.where(w_enc >= 0, np.asarray(table_e, np.float64)[np.clip(w_enc, 0, None)], 0.0)
    if table_c is not None:
        value = value + np.where(w_cal >= 0, np.asarray(table_c, np.float64)[np.clip(w_cal, 0, None)], 0.0)
    out = Boundaries(bounds.astype(dtype), w_enc[kept], w_cal[kept], value[kept])
    # the check: the lookup against the rule where it could go wrong
    tiny = np.array([np.finfo(dtype).smallest_subnormal, np.finfo(dtype).tiny], dtype=dtype)
    probe = np.concatenate([
        _neighbours(out.bounds, 4), ext, tiny, -tiny, np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype)
    ])  # fmt: skip
    t_enc, t_cal = stepwise_spike_times(probe, tab_e, tab_c)
    w = (probe[:, None] >= out.bounds[None, :]).sum(1)
    finite = ~np.isnan(probe)
    if not (np.array_equal(out.t_enc[w], t_enc) and np.array_equal(out.t_cal[w], t_cal)
            and np.array_equal(np.searchsorted(out.bounds, probe[finite], side="right"), w[finite])):  # fmt: skip
        raise RuntimeError("the codeword boundaries disagree with the stepwise rule; use the stepwise loop")
    return out


def _word_lookup(parts, bounds, tables, counts: bool, search: bool):
    """The codebook lookup on torch tensors, written as straight-line tensor code so that
    ``torch.compile`` fuses it into one pass (:func:`compiled_lookup`).

    ``v = parts[0] + parts[1] + ...`` (added in that order, as the twin adds a layer's bias and
    inputs); ``bounds``: :attr:`Boundaries.bounds` as a tensor of ``v``'s dtype; ``tables``:
    per-word tables to gather (e.g. the decoded value in ``v``'s dtype). The word is
    ``#{j: v >= bounds[j]}``: with ``search=True`` one ``torch.bucketize`` (eager; NaN would
    land on the last word, callers exclude it), else one comparison per boundary, unrolled
    (compiled; NaN compares false, word 0 as in the rule). ``counts=True`` also returns the
    spikes per sample, ``(B, 2)`` int64: encoding (word > 0) and calibration (``tables[-1]``
    is then the per-word 0/1 calibration flag, not returned). Returns ``(gathered, counts)``.
    """
    torch = _torch_module()
    v = parts[0]
    for h in parts[1:]:
        v = v + h
    if search:
        w = torch.bucketize(v, bounds, right=True)
    else:
        w = (v >= bounds[0]).to(torch.int32)
        for j in range(1, bounds.shape[0]):
            w = w + (v >= bounds[j]).to(torch.int32)
    if not counts:
        return [tab[w] for tab in tables], None
    out = [tab[w] for tab in tables[:-1]]
    flat = w.flatten(1)
    n = torch.stack([(flat > 0).sum(1), tables[-1][flat].sum(1, dtype=torch.int64)], dim=1)
    return out, n


_COMPILED_LOOKUP: dict = {}


def compiled_lookup(key: Any = None):
    """:func:`_word_lookup` compiled by ``torch.compile`` (inductor): the comparisons against
    every boundary, the gathers and the spike counts fused into one pass over the potentials;
    same comparisons in the same dtype, so the same words (tested). The first call for a new
    number of boundaries, dtype or set of outputs compiles (seconds, needs a C++ compiler).

    ``key`` names one variant (the callers use dtype, padded number of boundaries, number of
    parts and outputs): each key gets its own copy of the function's code, so that dynamo's
    recompilation limit (per code object) counts the recompilations of one variant only
    (shapes), not every code and dtype of a network or a test session."""
    if key not in _COMPILED_LOOKUP:
        import types

        torch = _torch_module()
        fn = types.FunctionType(_word_lookup.__code__.replace(), _word_lookup.__globals__, "_word_lookup")
        _COMPILED_LOOKUP[key] = torch.compile(fn, dynamic=True)
    return _COMPILED_LOOKUP[key]


def _all_finite(v) -> bool:
    """Whether a torch tensor holds no NaN/inf: one ``aminmax`` pass (NaN propagates)."""
    torch = _torch_module()
    if v.numel() == 0:
        return True
    lo, hi = torch.aminmax(v)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


class CodeBase:
    """What SC-TTFS and TTFS share: the window, the tables, decoding and the codebook."""

    T: int
    encode: ThresholdKernel
    calibrate: ThresholdKernel | None

    @property
    def has_calibration(self) -> bool:
        return self.calibrate is not None

    def theta_e(self, t: Any) -> np.ndarray:
        """Encoding threshold at integer step(s) ``t`` in ``[0, T)``, from the lookup table."""
        return self._lookup(self.table_e, t, "t")

    def theta_c(self, t: Any) -> np.ndarray:
        """Calibration threshold at integer step(s) ``t`` in ``[0, T)``, from the lookup table."""
        if self.calibrate is None:
            raise ValueError("a TTFS code has no calibration kernel; use an SCTTFSCode for theta_c")
        return self._lookup(self.table_c, t, "t")

    def _lookup(self, table: np.ndarray, t: Any, name: str) -> np.ndarray:
        t = np.asarray(t)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer step (got dtype {t.dtype}); steps are 0..T-1")
        if t.size and (t.min() < 0 or t.max() >= self.T):
            raise ValueError(f"{name} must lie in [0, {self.T - 1}] (got values from {t.min()} to {t.max()})")
        return table[t]

    # --- the rule -----------------------------------------------------------------------
    def spike_times(self, v: Any):
        """Spike times ``(t_enc, t_cal)`` of potentials ``v`` by the stepwise rule (eqs. 9-13).

        ``v``: numpy array / scalar / torch tensor (any shape, any device), float32 or float64.
        Returns int64 arrays (numpy in, numpy out; torch in, torch out) of ``v``'s shape with
        ``-1`` where the spike is absent. For TTFS, ``t_cal`` is all ``-1``.
        """
        return stepwise_spike_times(as_potentials(v), self.table_e, self.table_c)

    def encode_torch(self, v, *, compiled: bool = False, check: bool = True):
        """Spike times and decoded values of a torch tensor in one pass: the torch twin's path.

        Returns ``(t_enc, t_cal, z)``, spike times as tensors of ``v``'s dtype (``-1`` = no
        spike; ``.long()`` gives :meth:`spike_times`) and ``z = decode(t_enc, t_cal)`` in ``v``'s
        dtype. It looks the potentials up in the code's :meth:`boundaries` (one ``bucketize``
        eager; ``compiled=True``: one fused pass through :func:`compiled_lookup`) instead of
        running the T-step loop; the results are those of the stepwise rule, bit for bit
        (tested). ``check=False`` skips the validation of ``v`` (for callers that validated
        their inputs; non-finite potentials then get the loop's result: NaN and -inf are
        silent, +inf the largest word).
        """
        if check:
            v = as_potentials(v)
            if not _is_torch(v):
                raise TypeError(f"v must be a torch tensor for encode_torch (got {type(v).__name__})")
        v = v.detach()
        fast = self._lookup_tables(v.dtype, v.device)
        if fast is None or (not compiled and not _all_finite(v)):  # bucketize would put NaN last
            return self._encode_stepwise(v, compiled)
        tables = (fast["t_enc_v"], fast["t_cal_v"], fast["z"])
        if not compiled:
            (t_enc, t_cal, z), _ = _word_lookup([v], fast["bounds"], tables, False, True)
            return t_enc, t_cal, z
        flat = v.reshape(-1)
        tables = tuple(fast[k + "_c"] for k in ("t_enc_v", "t_cal_v", "z"))
        key = (v.dtype, len(fast["bounds_c"]), 1, "encode_torch")
        (t_enc, t_cal, z), _ = compiled_lookup(key)([flat], fast["bounds_c"], tables, False, False)
        return t_enc.reshape(v.shape), t_cal.reshape(v.shape), z.reshape(v.shape)

    def _encode_stepwise(self, v, compiled: bool = False):
        """:meth:`encode_torch` by the T-step loop (the reference; the fallback where the
        boundaries cannot be used)."""
        tab_e, tab_c, dec_e, dec_c = self._torch_tables(v.dtype, v.device)
        if not compiled:
            return _stepwise_torch(v, tab_e, tab_c, dec_e, dec_c)
        flat = v.reshape(-1)
        t_enc, t_cal, z = compiled_stepwise()(flat, tab_e, tab_c, dec_e, dec_c)
        return t_enc.reshape(v.shape), t_cal.reshape(v.shape), z.reshape(v.shape)

    def _encode_layer(self, parts, *, compiled: bool = False, times: bool = False, counts: bool = True):
        """The twin's spiking layer: ``v = parts[0] + parts[1] + ...`` (bias first, then each
        input, batch first), then its decoded value ``z``, int64 spike times (when ``times``)
        and the spikes per sample (``(B, 2)`` int64, when ``counts``). Potentials of finite
        inputs and finite weights need no check, except that float overflow can make them
        non-finite: the eager lookup then runs the loop, the compiled one is exact there too.
        Returns ``(z, (t_enc, t_cal) or None, counts or None)``."""
        torch = _torch_module()
        v0 = parts[0]
        fast = self._lookup_tables(v0.dtype, v0.device)
        if fast is not None and not compiled:
            v = parts[0]
            for h in parts[1:]:
                v = v + h
            parts = [v]
            if not _all_finite(v):
                fast = None
        if fast is None:
            v = parts[0]
            for h in parts[1:]:
                v = v + h
            t_enc, t_cal, z = self._encode_stepwise(v.detach(), compiled)
            n = None
            if counts:
                n = torch.stack([(t_enc >= 0).flatten(1).sum(1), (t_cal >= 0).flatten(1).sum(1)], dim=1)
            return z, ((t_enc.long(), t_cal.long()) if times else None), n
        sfx = "_c" if compiled else ""
        names = ("z", "t_enc", "t_cal") if times else ("z",)
        tables = tuple(fast[k + sfx] for k in names) + ((fast["cal" + sfx],) if counts else ())
        key = (v0.dtype, len(fast["bounds_c"]), len(parts), times, counts)
        lookup = compiled_lookup(key) if compiled else _word_lookup
        out, n = lookup(list(parts), fast["bounds" + sfx], tables, counts, not compiled)
        return out[0], (tuple(out[1:]) if times else None), n

    def boundaries(self, dtype) -> Boundaries:
        """The code's :class:`Boundaries` for potentials of ``dtype`` (numpy or torch float32 /
        float64): :func:`spike_boundaries` of its tables, derived once and cached."""
        torch = _torch_module()
        if torch is not None and isinstance(dtype, torch.dtype):
            dtype = torch.empty((), dtype=dtype).numpy().dtype
        dtype = np.dtype(dtype)
        cache = self.__dict__.setdefault("_boundaries_cache", {})
        if dtype not in cache:
            cache[dtype] = spike_boundaries(self.table_e, self.table_c, dtype)
        return cache[dtype]

    def _lookup_tables(self, dtype, device):
        """:meth:`boundaries` as torch tensors on ``device`` (made once): ``bounds`` and per-word
        ``z`` (decoded value), ``t_enc_v``/``t_cal_v`` (``dtype``), ``t_enc``/``t_cal`` (int64),
        ``cal`` (0/1 int64); the same with suffix ``_c`` padded for the compiled lookup (NaN
        boundaries, never counted, to a multiple of 8: fewer recompilations). ``None`` (with a
        warning) for other dtypes or when the rule has no boundaries for these tables."""
        key = (dtype, str(device))
        cache = self.__dict__.setdefault("_lookup_cache", {})
        if key not in cache:
            torch = _torch_module()
            if dtype not in (torch.float32, torch.float64):
                cache[key] = None
                return None
            try:
                b = self.boundaries(dtype)
            except RuntimeError as err:
                import warnings

                warnings.warn(f"{self!r} in {dtype}: {err}; the torch twin runs the stepwise loop", stacklevel=3)
                cache[key] = None
                return None
            n_pad = -len(b.bounds) % 8 if len(b.bounds) else 8
            words = {
                "z": (b.value, dtype), "t_enc_v": (b.t_enc, dtype), "t_cal_v": (b.t_cal, dtype),
                "t_enc": (b.t_enc, torch.int64), "t_cal": (b.t_cal, torch.int64),
                "cal": ((b.t_cal >= 0).astype(np.int64), torch.int64),
            }  # fmt: skip
            out = {"bounds": torch.from_numpy(b.bounds.copy()).to(device)}
            out["bounds_c"] = torch.from_numpy(
                np.concatenate([b.bounds, np.full(n_pad, np.nan, b.bounds.dtype)])
            ).to(device)
            for k, (a, dt) in words.items():
                out[k] = torch.from_numpy(np.asarray(a)).to(device=device, dtype=dt)
                out[k + "_c"] = torch.from_numpy(np.concatenate([a, np.repeat(a[-1:], n_pad)])).to(
                    device=device, dtype=dt
                )
            cache[key] = out
        return cache[key]

    def _torch_tables(self, dtype, device):
        """Thresholds in ``dtype`` and float64 decoding tables on ``device``, made once."""
        key = (dtype, str(device))
        cache = self.__dict__.setdefault("_tables_cache", {})
        if key not in cache:
            torch = _torch_module()
            sc = self.calibrate is not None
            cache[key] = (
                torch_table(self.table_e, dtype, device),
                torch_table(self.table_c, dtype, device) if sc else None,
                torch_table(self.table_e, torch.float64, device),
                torch_table(self.table_c, torch.float64, device)
                if sc
                else torch.zeros(self.T, dtype=torch.float64, device=device),
            )
        return cache[key]

    def decode(self, t_enc: Any, t_cal: Any | None = None):
        """Decoded value ``theta_e(t_enc) + theta_c(t_cal)`` (eqs. 16-17), 0 for absent spikes.

        numpy in, float64 numpy out; torch in, torch out (float64 unless ``dtype`` differs).
        """
        if _is_torch(t_enc):
            torch = _torch_module()
            zero = torch.zeros((), dtype=torch.float64, device=t_enc.device)
            tab_e = torch_table(self.table_e, torch.float64, t_enc.device)
            z = torch.where(t_enc >= 0, tab_e[t_enc.clamp(min=0)], zero)
            if t_cal is not None and self.calibrate is not None:
                tab_c = torch_table(self.table_c, torch.float64, t_cal.device)
                z = z + torch.where(t_cal >= 0, tab_c[t_cal.clamp(min=0)], zero)
            return z
        t_enc = self._times(t_enc, "t_enc")
        z = np.where(t_enc >= 0, self.table_e[np.clip(t_enc, 0, None)], 0.0)
        if t_cal is not None:
            t_cal = self._times(t_cal, "t_cal")
            if self.calibrate is None:
                if np.any(t_cal >= 0):
                    raise ValueError("a TTFS code has no calibration spikes, but t_cal holds spike times")
            else:
                if np.any((t_cal >= 0) & (t_cal < t_enc)):
                    raise ValueError("t_cal must be >= t_enc where both spikes exist (eq. 12)")
                z = z + np.where(t_cal >= 0, self.table_c[np.clip(t_cal, 0, None)], 0.0)
        return z

    def _times(self, t: Any, name: str) -> np.ndarray:
        t = np.asarray(t)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integer spike times (got dtype {t.dtype}); -1 means no spike")
        if t.size and (t.min() < NO_SPIKE or t.max() >= self.T):
            raise ValueError(f"{name} must lie in [-1, {self.T - 1}] (got values from {t.min()} to {t.max()})")
        return t

    def quantize(self, v: Any):
        """``decode(spike_times(v))``: the value a receiving neuron sees (the SNN's "activation").

        The result has ``v``'s dtype (float32 potentials give float32 values)."""
        v = as_potentials(v)
        z = self.decode(*self.spike_times(v))
        if _is_torch(v):
            return z.to(v.dtype)
        return z.astype(v.dtype)

    # --- the code as a set of words -------------------------------------------------------
    def codebook(self, *, include_unreachable: bool = False) -> list[CodeWord]:
        """Every reachable spike sequence ``(t_enc, t_cal)`` with its decoded value, sorted by value.

        Silence ``(-1, -1)`` (value 0) comes first. For SC-TTFS the admissible sequences are
        ``t_enc`` in ``0..T-1`` with ``t_cal`` in ``t_enc..T-1`` or absent: the paper's
        ``N(T) = T(T+3)/2``. Sequence ``(t, s)`` is reachable iff some potential produces it:
        the residual after encoding at ``t`` lies in ``[0, theta_e(t-1) - theta_e(t))``
        (unbounded for ``t = 0``), so a calibration at ``s`` needs ``theta_c(s)`` below that
        bound. With ``include_unreachable=True`` all admissible sequences are listed.
        """
        words = [CodeWord(NO_SPIKE, NO_SPIKE, 0.0)]
        e = self.table_e
        for t in range(self.T):
            words.append(CodeWord(t, NO_SPIKE, float(e[t])))
            if self.calibrate is None:
                continue
            gap = math.inf if t == 0 else float(e[t - 1] - e[t])
            for s in range(t, self.T):
                if include_unreachable or self.table_c[s] < gap:
                    words.append(CodeWord(t, s, float(e[t] + self.table_c[s])))
        words.sort(key=lambda w: (w.value, w.t_enc, w.t_cal))
        return words

    @property
    def max_value(self) -> float:
        """Largest decodable value (potentials above it are clipped: the ``e_c,max`` term)."""
        return max(w.value for w in self.codebook())

    @property
    def min_value(self) -> float:
        """Smallest non-zero decodable value (positive potentials below it are silent:
        the ``e_c,min`` term)."""
        return float(self.table_e[-1])

    def to_dict(self) -> dict:
        """The code as plain JSON data: ``{"kind": "sc-ttfs" | "ttfs", "T": int, "encode":
        [alpha, beta, k], "calibrate": [alpha, beta, k]}`` (no ``calibrate`` for TTFS); the
        inverse of :func:`code_from_dict`."""
        out = {"kind": self.kind, "T": self.T, "encode": [self.encode.alpha, self.encode.beta, self.encode.k]}
        if self.calibrate is not None:
            out["calibrate"] = [self.calibrate.alpha, self.calibrate.beta, self.calibrate.k]
        return out

    def __repr__(self) -> str:
        cal = f", calibrate={self.calibrate}" if self.calibrate is not None else ""
        kern = "encode" if self.calibrate is not None else "kernel"
        return f"{type(self).__name__}(T={self.T}, {kern}={self.encode}{cal})"


class SCTTFSCode(CodeBase):
    """Self-calibrating TTFS code: an encoding spike and at most one calibration spike
    per window of ``T`` steps (eqs. 9-17).

    Parameters
    ----------
    T : int
        Window length in time steps (``>= 1``); spikes happen at steps ``0..T-1``.
    encode, calibrate : ThresholdKernel
        The encoding kernel :math:`\\theta_e` and the calibration kernel :math:`\\theta_c`.
    """

    kind = "sc-ttfs"

    def __init__(self, T: int, encode: ThresholdKernel, calibrate: ThresholdKernel):
        self.T = _window(T)
        for name, kern in (("encode", encode), ("calibrate", calibrate)):
            if not isinstance(kern, ThresholdKernel):
                raise TypeError(f"{name} must be a ThresholdKernel (got {type(kern).__name__})")
        self.encode = encode
        self.calibrate = calibrate
        self.table_e = encode.table(self.T)
        self.table_c = calibrate.table(self.T)
        self.table_e.setflags(write=False)
        self.table_c.setflags(write=False)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SCTTFSCode)
            and (self.T, self.encode, self.calibrate) == (other.T, other.encode, other.calibrate)
        )

    def __hash__(self) -> int:
        return hash(("SCTTFSCode", self.T, self.encode, self.calibrate))


class TTFSCode(CodeBase):
    """Single-spike TTFS code (T2FSNN-style baseline): one spike at the first step with
    ``v >= theta(t)``, decoded as ``theta(t_enc)`` (eqs. 1-7 with the kernel of eq. 14)."""

    kind = "ttfs"

    def __init__(self, T: int, kernel: ThresholdKernel):
        self.T = _window(T)
        if not isinstance(kernel, ThresholdKernel):
            raise TypeError(f"kernel must be a ThresholdKernel (got {type(kernel).__name__})")
        self.encode = kernel
        self.calibrate = None
        self.table_e = kernel.table(self.T)
        self.table_e.setflags(write=False)
        self.table_c = None

    @property
    def kernel(self) -> ThresholdKernel:
        return self.encode

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TTFSCode) and (self.T, self.encode) == (other.T, other.encode)

    def __hash__(self) -> int:
        return hash(("TTFSCode", self.T, self.encode))


#: Table 1 of the paper: kernel initializations for CIFAR10 and CIFAR100 (encode, calibrate).
PRESETS = {
    "cifar10": (ThresholdKernel(alpha=2.0, beta=-1.0, k=0.8), ThresholdKernel(alpha=1.0, beta=0.8, k=1.0)),
    "cifar100": (ThresholdKernel(alpha=4.5, beta=-1.0, k=0.9), ThresholdKernel(alpha=2.0, beta=-0.5, k=1.0)),
}

#: Either code; every spiking layer carries one.
Code = SCTTFSCode | TTFSCode

#: The codes by their ``kind`` (the name :meth:`CodeBase.to_dict` writes).
CODE_KINDS = {"sc-ttfs": SCTTFSCode, "ttfs": TTFSCode}


def code_from_dict(d: Any, where: str = "") -> Code:
    """The code that :meth:`CodeBase.to_dict` wrote. Refuses anything else with a message that
    names the key and ``where`` (e.g. the file): an unknown ``kind`` is an error, never TTFS."""
    at = f" in {where}" if where else ""
    if not isinstance(d, dict):
        raise ValueError(f"a code must be a JSON object{at} (got {type(d).__name__})")
    kind = d.get("kind")
    if kind not in CODE_KINDS:
        raise ValueError(f"unknown code kind {kind!r}{at}; expected one of {sorted(CODE_KINDS)}")
    keys = {"kind", "T", "encode"} | ({"calibrate"} if kind == "sc-ttfs" else set())
    if set(d) != keys:
        raise ValueError(f"a {kind} code{at} has the keys {sorted(keys)} (got {sorted(d)})")

    def kernel(name):
        v = d[name]
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            raise ValueError(f"{name}{at} must be [alpha, beta, k] (got {v!r})")
        return ThresholdKernel(*v)

    if kind == "sc-ttfs":
        return SCTTFSCode(d["T"], kernel("encode"), kernel("calibrate"))
    return TTFSCode(d["T"], kernel("encode"))


def closed_form_time(v: Any, kernel: ThresholdKernel, T: int) -> np.ndarray:
    """Eq. 15's closed form ``t = ceil(max(0, (beta - ln(v/alpha)) / k))`` as a spike step,
    ``-1`` where it falls outside the window (``t >= T`` or ``v <= 0``).

    A derived view for analysis: it agrees with the stepwise rule except possibly where
    ``v`` sits within rounding of a threshold, where the stepwise rule is the definition
    (SPEC section 1). The paper's stabilizer ``tau`` is not needed for ``v > 0``.
    """
    v = np.asarray(as_potentials(v), dtype=np.float64)
    T = _window(T)
    out = np.full(v.shape, NO_SPIKE, dtype=np.int64)
    pos = v > 0
    with np.errstate(divide="ignore"):
        t = np.ceil(np.maximum(0.0, (kernel.beta - np.log(v[pos] / kernel.alpha)) / kernel.k))
    out[pos] = np.where(t < T, t, NO_SPIKE).astype(np.int64)
    return out
