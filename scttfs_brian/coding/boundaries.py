r"""Codeword boundaries: the stepwise rule of one code as intervals of potentials (pure numpy).

``(t_enc, t_cal)`` is a monotone step function of ``v``: the tables do not increase with ``t``, so
a larger potential encodes no later, and within one encoding step the residual
``v - theta_e(t_enc)`` (one rounded subtraction, monotone in ``v``) calibrates no later. Each
codeword is therefore an interval of potentials. The smallest potential of each, found by
bisection over every float of the dtype with the stepwise rule itself deciding, turns the T-step
loop into "how many boundaries are <= v" and a lookup of that word's spike times and decoded
value. Engines build their fast paths on these (the torch engine: :mod:`scttfs_brian.torch.lookup`);
this module only derives and checks them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .kernels import check_codebook_size
from .rule import NO_SPIKE, stepwise_spike_times

__all__ = ["Boundaries", "spike_boundaries", "float_neighbours"]


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


def float_neighbours(x: np.ndarray, ulps: int) -> np.ndarray:
    """The finite values of ``x`` and their ``ulps`` float neighbours either way (in ``x``'s
    dtype, clipped to the finite range): the potentials where a lookup by boundaries could go
    wrong, probed by :func:`spike_boundaries` and the tests."""
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

    The check (:func:`_check`) evaluates the rule at every boundary and its 4 float neighbours
    either way, at ``+-0``, ``+-max``, ``+-inf``, NaN and the smallest subnormals, and compares
    with the lookup.
    """
    check_codebook_size(len(table_e), table_c is not None)
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
    _check(out, tab_e, tab_c)
    return out


def _check(b: Boundaries, tab_e: np.ndarray, tab_c: np.ndarray | None) -> None:
    """The lookup by ``b`` against the rule where it could go wrong: every boundary and its 4
    float neighbours either way, ``+-0``, ``+-max``, ``+-inf``, NaN and the smallest subnormals."""
    dtype = b.bounds.dtype
    fin = np.finfo(dtype)
    special = [fin.smallest_subnormal, fin.tiny, -fin.smallest_subnormal, -fin.tiny, -fin.max, fin.max]
    probe = np.concatenate([
        float_neighbours(b.bounds, 4), np.array(special + [0.0, -0.0, np.inf, -np.inf, np.nan], dtype)
    ])  # fmt: skip
    t_enc, t_cal = stepwise_spike_times(probe, tab_e, tab_c)
    w = (probe[:, None] >= b.bounds[None, :]).sum(1)
    finite = ~np.isnan(probe)
    if not (np.array_equal(b.t_enc[w], t_enc) and np.array_equal(b.t_cal[w], t_cal)
            and np.array_equal(np.searchsorted(b.bounds, probe[finite], side="right"), w[finite])):  # fmt: skip
        raise RuntimeError("the codeword boundaries disagree with the stepwise rule; use the stepwise loop")
