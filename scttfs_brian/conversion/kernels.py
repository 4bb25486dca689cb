r"""Kernels from activations: the one implementation of ``code="auto"`` (and of every other
place that fits codes to an ANN's activations).

:func:`ann_activations` reads the ANN's post-ReLU activations at every spiking layer of its
converted graph; :func:`code_from_activations` fits one layer's kernels to them;
:func:`codes_from_activations` does it for every layer. :func:`quantize_tables` is the code's
``quantize`` computed from its threshold tables without the step loop (equal to the stepwise
rule); the fit's loss computes the same decoded values interval by interval on the sorted
activations.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode
from .trace import as_batches
from .walker import activations, read_model

__all__ = [
    "FIT_KINDS",
    "ann_activations",
    "code_from_activations",
    "codes_from_activations",
    "quantize_tables",
]

#: The kinds of code the fit knows: SC-TTFS (eqs. 9-17) and the single-spike TTFS baseline.
FIT_KINDS = ("sc-ttfs", "ttfs")


def check_kind(kind: Any) -> str:
    """``kind`` if the fit knows it, else a ``ValueError``."""
    if kind not in FIT_KINDS:
        raise ValueError(f"kind must be 'sc-ttfs' or 'ttfs' (got {kind!r})")
    return kind


def ann_activations(ann: nn.Module, batches: Any) -> dict[str, np.ndarray]:
    """The ANN's post-ReLU activations at every spiking layer of its converted graph.

    Parameters
    ----------
    ann : torch.nn.Module
        The ANN (not modified; run as a float64 copy in eval mode).
    batches : tensor or iterable of batches
        As ``calibration_data`` of :func:`~.api.convert`; the input shape is read from the first
        batch.

    Returns
    -------
    dict
        ``{layer_name: array of shape (N, *layer_shape)}`` in float64, names as in the graph
        :func:`~.api.convert` builds (the output layer is not included: it has no ReLU).
    """
    batches = as_batches(batches, None)
    traced = read_model(ann, tuple(batches[0].shape[1:]))
    return activations(traced, batches)


def codes_from_activations(acts: Mapping[str, Any], T: int, kind: str = "sc-ttfs") -> dict:
    """``{layer: code_from_activations(a, T, kind)}`` for every layer's activations ``a`` (e.g.
    from :func:`ann_activations`): the per-layer codes of ``code="auto"``."""
    codes = {}
    for name, a in acts.items():
        try:
            codes[name] = code_from_activations(a, T, kind)
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
    return codes


def code_from_activations(
    acts: Any, T: int, kind: str = "sc-ttfs", *, percentile: float = 99.9, max_samples: int = 20_000
) -> SCTTFSCode | TTFSCode:
    r"""Kernels fitted to a layer's activations: the initialization used by ``code="auto"``.

    The paper's Table 1 kernels were set by hand; this rule fits them to data. Each kernel is
    parametrized by its first value :math:`\theta(0) = \alpha` and its decay ``k``, with
    ``beta = 0`` (``alpha`` and ``beta`` are redundant in eq. 14: only :math:`\alpha e^\beta` counts).

    **Objective.** Both codes round *down* (eqs. 9-13): ``q(a) <= a``, so the mean absolute
    conversion error :math:`\overline{|a - q(a)|}` of eqs. 18-19 equals
    :math:`\overline{a} - \overline{q(a)}`, the code's mean bias, and nothing else. Minimizing it
    only raises the mean decoded value: with few thresholds (small ``T``) it puts them low and
    leaves the potentials between them badly resolved, which the bias correction
    (:func:`~scttfs_brian.training.correct_biases`, a shift ``c`` of the potentials) does not
    repair (digits CNN, seeds 0-2, agreement with the ANN after bias correction at the optimum
    of that error / of the loss below: TTFS at ``T = 2`` 88.0 / 96.4 %, SC-TTFS at ``T = 1``
    89.1 / 96.1 %). The fit therefore minimizes the error that a shift cannot remove:

    .. math:: L = \frac{1}{n} \sum_{a > 0} |a - q(a + c)|, \qquad
              c \text{ such that } \sum_{a > 0} q(a + c) = \sum_{a > 0} a,

    over (a deterministic subsample of at most ``max_samples`` of) the ``n`` activations of the
    layer. ``c`` is the shift of the bias correction, taken for the layer as a whole (``c >= 0``
    since ``q(a) <= a``). Activations ``<= 0`` (the ReLU's zeros) stay silent and count with error
    0: exactly so while ``c`` is below the smallest threshold, whatever the potentials behind the
    zeros (at the fitted codes of the digits CNN, ``c`` is 0.4-0.65 of it). :math:`L` contains all three error terms of eqs. 18-19 (below the smallest code, above
    the largest, and inside the range) once the rounding bias is removed.

    **Constraints.** ``top`` = the ``percentile`` (99.9th) of the positive activations; the
    largest decodable value ``U`` (``theta_e(0)``, plus ``theta_c(0)`` for SC-TTFS) is kept in
    ``[top/2, 2 top]``, and each kernel's decay in ``1e-6 <= k`` with ``theta(T-1) >= 1e-8
    theta(0)``.

    **Search.** The parameters are ``log U``, the log of each kernel's total decay ``k (T-1)``
    (absent for ``T = 1``) and, for SC-TTFS, the share of the calibration kernel in the largest
    value, ``logit(theta_c(0)/U)``: in these coordinates the constraints are a box.

    1. A grid over the box, 25 x 24 points for TTFS, 7 x 8 x 7 x 8 for SC-TTFS (fewer for
       ``T = 1``), the loss of every point computed at once (see below).
    2. From the 3 best grid points that are not neighbours of each other: a pattern search
       that tries steps along every coordinate and every pair of coordinates (the diagonals
       follow valleys where two parameters trade off, e.g. moving ``U`` and the decay together
       while the smaller thresholds stay), halving the step from half the grid spacing to
       ``1e-3`` of it. The best end point is the fit.

    The loss is exact on the sample: with the sample sorted and its prefix sums, the error of a
    code is a sum over the intervals of constant decoded value (``T + 1`` intervals for TTFS,
    ``T (T + 3)/2 + 1`` for SC-TTFS), a few binary searches per candidate, and ``c`` is found by
    bisection (12 steps on the grid, which only ranks, 24 in the pattern search). The fit is
    deterministic; on 20 000 samples it takes about 0.02 s (TTFS) and 0.02-0.1 s (SC-TTFS,
    ``T = 1..6``) per layer, the SC-TTFS codebook and so its cost growing as ``T^2`` (about 1 s
    at ``T = 24``).

    Parameters
    ----------
    acts : array-like
        Activations of one layer (any shape), e.g. from :func:`ann_activations`.
    T : int
        Window length in steps.
    kind : {"sc-ttfs", "ttfs"}
        Which code to fit.
    percentile : float
        Of the positive activations: ``top``, the scale of the constraint on ``U``.
    max_samples : int
        At most this many activations (a seeded subsample, in their original order) enter the loss.

    Returns
    -------
    SCTTFSCode or TTFSCode
    """
    check_kind(kind)
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"T must be a positive integer number of steps (got {T!r})")
    T = int(T)
    if isinstance(acts, torch.Tensor):
        acts = acts.detach().cpu().numpy()
    a = np.asarray(acts, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(
            "no activations to fit the kernels to (the calibration data holds no samples); pass at "
            "least one input, e.g. a few hundred training images"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"acts holds {np.count_nonzero(~np.isfinite(a))} non-finite value(s); check the ANN")
    positive = a[a > 0]
    if positive.size == 0:
        raise ValueError(
            f"all {a.size} activations are <= 0 (the layer never fires on the calibration data, e.g. "
            "all-zero inputs), so its kernels cannot be fitted; pass calibration data that activates "
            "the network, e.g. a few hundred training images"
        )
    top = float(np.percentile(positive, percentile))
    if a.size > max_samples:
        a = a[np.sort(np.random.default_rng(0).choice(a.size, max_samples, replace=False))]
    fit = _KernelFit(a, T, top, kind)
    return fit.code(fit.search())


class _KernelFit:
    """The loss and search of :func:`code_from_activations`.

    A candidate is a row of box coordinates ``(log U, [log k_e (T-1)], [logit(theta_c(0)/U),
    [log k_c (T-1)]])`` (bracketed: only for ``T > 1`` / SC-TTFS); :meth:`loss` takes an
    ``(M, d)`` array of them and returns ``M`` losses.
    """

    #: Starting points of the pattern search (the best grid points, not neighbours).
    STARTS = 3
    #: The pattern search stops when its step is this fraction of the grid spacing.
    MIN_STEP = 1e-3
    #: Bisection steps of the shift ``c`` (on ``[0, 2 top]``): on the grid, which only ranks the
    #: candidates, and in the pattern search.
    GRID_SHIFT_ITERATIONS = 12
    SHIFT_ITERATIONS = 24
    #: Bounds of the share of the calibration kernel in ``U``, as a logit (~1e-4 .. 1 - 1e-4).
    SHARE = 9.0

    def __init__(self, a: np.ndarray, T: int, top: float, kind: str):
        self.T, self.top, self.kind = T, top, kind
        self.n = a.size  # the mean is over all activations: those <= 0 are silent, error 0
        self.a = np.sort(a[a > 0])
        self.cumsum = np.concatenate([[0.0], np.cumsum(self.a)])
        self.target = float(self.cumsum[-1])  # the sum of the decoded values must equal it
        self.steps = np.arange(T, dtype=np.float64)
        #: (t, s) of every interval of constant decoded value in increasing order (s = -1: e_t alone)
        pairs = [(t, s) for t in range(T - 1, -1, -1) for s in [-1, *range(T - 1, t - 1, -1)]]
        self.pairs = tuple(np.array(x) for x in zip(*pairs, strict=True))
        u = (math.log(0.5 * top), math.log(2.0 * top))
        span = (math.log(1e-6 * (T - 1)), math.log(math.log(1e8))) if T > 1 else None
        box = [u] + ([span] if T > 1 else [])
        if kind == "sc-ttfs":
            box += [(-self.SHARE, self.SHARE)] + ([span] if T > 1 else [])
        self.box = np.array(box)
        # the grid: fewer points per axis where there are more axes
        sc = kind == "sc-ttfs"
        span_grid = np.linspace(math.log(0.05), math.log(math.log(1e8)), 8 if sc else 24) if T > 1 else None
        axes = [np.linspace(*u, 7 if sc else 25)] + ([span_grid] if T > 1 else [])
        if sc:
            axes += [np.linspace(-3.0, 3.0, 7)] + ([span_grid] if T > 1 else [])
        self.axes = axes

    # -- codes ----------------------------------------------------------------------------
    def kernels(self, P: np.ndarray) -> tuple:
        """``(theta_e(0), k_e, theta_c(0), k_c)`` per candidate (the last two None for TTFS)."""
        P = np.atleast_2d(P)
        U = np.exp(P[:, 0])
        one = np.ones(len(P))
        ke = np.exp(P[:, 1]) / (self.T - 1) if self.T > 1 else one
        if self.kind == "ttfs":
            return U, ke, None, None
        i = 2 if self.T > 1 else 1
        share = 1.0 / (1.0 + np.exp(-P[:, i]))
        kc = np.exp(P[:, i + 1]) / (self.T - 1) if self.T > 1 else one
        return U * (1.0 - share), ke, U * share, kc

    def code(self, p: np.ndarray) -> SCTTFSCode | TTFSCode:
        e0, ke, c0, kc = (None if x is None else float(x[0]) for x in self.kernels(p))
        enc = ThresholdKernel(alpha=e0, beta=0.0, k=ke)
        if self.kind == "ttfs":
            return TTFSCode(self.T, enc)
        return SCTTFSCode(self.T, enc, ThresholdKernel(alpha=c0, beta=0.0, k=kc))

    def segments(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, level)``, each ``(M, S)``, ``lo`` increasing along a row: the potentials in
        ``[lo[j], lo[j+1])`` (``[lo[-1], inf)`` for the last) decode to ``level[j]``, those below
        ``lo[0]`` to 0 (eqs. 9-13, as :func:`quantize_tables`; some intervals may be empty)."""
        e0, ke, c0, kc = self.kernels(P)
        E = e0[:, None] * np.exp(-ke[:, None] * self.steps)
        if c0 is None:
            return E[:, ::-1], E[:, ::-1]
        C = c0[:, None] * np.exp(-kc[:, None] * self.steps)
        # fired at t: e_t, plus c_s at the first s >= t with r >= c_s; the interval of t ends at
        # theta_e(t-1). In increasing order: t from T-1 down to 0, then e_t, e_t + c_{T-1}, ..., e_t + c_t
        t, s = self.pairs
        up = np.concatenate([np.full((len(E), 1), np.inf), E[:, :-1]], 1)[:, t]
        level = E[:, t] + np.where(s >= 0, C[:, s], 0.0)
        return np.minimum(level, up), level

    # -- the loss ---------------------------------------------------------------------------
    def _below(self, x: np.ndarray) -> np.ndarray:
        """How many activations are ``< x``."""
        return np.searchsorted(self.a, x, side="left")

    def _ranges(self, lo: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index ranges ``[i0, i1)`` of the sorted positive activations in each interval, shifted
        by ``c``."""
        i0 = self._below(lo - c[:, None])
        return i0, np.concatenate([i0[:, 1:], np.full((len(i0), 1), self.a.size)], 1)

    def shift(self, lo: np.ndarray, level: np.ndarray, iterations: int) -> np.ndarray:
        """The shift ``c >= 0`` with mean ``q(a + c)`` = mean ``max(0, a)``, per candidate
        (bisection; ``c >= 0`` since ``q(a) <= a``)."""
        left = np.zeros(len(lo))
        right = np.full(len(lo), 2.0 * self.top)
        for _ in range(iterations):
            mid = 0.5 * (left + right)
            i0, i1 = self._ranges(lo, mid)
            low = ((i1 - i0) * level).sum(1) < self.target
            left, right = np.where(low, mid, left), np.where(low, right, mid)
        return 0.5 * (left + right)

    def loss(self, P: np.ndarray, iterations: int | None = None) -> np.ndarray:
        """:math:`L` of :func:`code_from_activations` for every row of ``P`` (``iterations``
        of the shift's bisection, default :attr:`SHIFT_ITERATIONS`)."""
        lo, level = self.segments(P)
        i0, i1 = self._ranges(lo, self.shift(lo, level, iterations or self.SHIFT_ITERATIONS))
        mid = np.clip(self._below(level), i0, i1)  # a < level before mid, >= from mid on
        cs = self.cumsum
        below = level * (mid - i0) - (cs[mid] - cs[i0])
        above = (cs[i1] - cs[mid]) - level * (i1 - mid)
        silent = cs[i0[:, 0]]  # below the smallest threshold: decode to 0
        return ((below + above).sum(1) + silent) / self.n

    # -- the search -------------------------------------------------------------------------
    def search(self) -> np.ndarray:
        axes = self.axes
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
        losses = self.loss(grid, self.GRID_SHIFT_ITERATIONS)
        spacing = np.array([ax[1] - ax[0] for ax in axes])
        starts = []
        for i in np.argsort(losses, kind="stable"):
            if all(np.max(np.abs(grid[i] - s) / spacing) > 1.5 for s in starts):
                starts.append(grid[i])
                if len(starts) == self.STARTS:
                    break
        d = len(axes)
        eye = np.eye(d)
        moves = [sign * eye[i] for i in range(d) for sign in (1.0, -1.0)]
        moves += [
            si * eye[i] + sj * eye[j]
            for i in range(d)
            for j in range(i + 1, d)
            for si in (1.0, -1.0)
            for sj in (1.0, -1.0)
        ]
        moves = np.array(moves)
        best, best_loss = None, math.inf
        for p in starts:
            loss = float(self.loss(p[None])[0])
            step = 0.5 * spacing
            while step[0] > self.MIN_STEP * spacing[0]:
                cands = np.clip(p + moves * step, self.box[:, 0], self.box[:, 1])
                cl = self.loss(cands)
                j = int(np.argmin(cl))
                if cl[j] < loss:
                    p, loss = cands[j], float(cl[j])
                else:
                    step = 0.5 * step
            if loss < best_loss:
                best, best_loss = p, loss
        return best


def quantize_tables(v: np.ndarray, tab_e: np.ndarray, tab_c: np.ndarray | None) -> np.ndarray:
    """``code.quantize(v)`` for ``v > 0`` from the code's threshold tables, without the step loop;
    equal to the stepwise rule (eqs. 9-13).

    ``tab_e`` (``tab_c``, ``None`` for TTFS) are the decreasing encoding (calibration) thresholds
    at steps ``0..T-1`` (``code.table_e``, ``code.table_c``). The first step with ``v >=
    theta_e(t)`` is the number of thresholds above ``v``; the calibration step is the first
    ``s >= t_enc`` with ``r >= theta_c(s)`` for the residual ``r = v - theta_e(t_enc)``, which is
    unchanged until then.
    """
    T = len(tab_e)
    t_enc = T - np.searchsorted(tab_e[::-1], v, side="right")
    fired = t_enc < T
    t_e = np.minimum(t_enc, T - 1)
    z = np.where(fired, tab_e[t_e], 0.0)
    if tab_c is None:
        return z
    r = v - tab_e[t_e]
    t_cal = np.maximum(t_enc, T - np.searchsorted(tab_c[::-1], r, side="right"))
    cal = fired & (t_cal < T)
    return z + np.where(cal, tab_c[np.minimum(t_cal, T - 1)], 0.0)
