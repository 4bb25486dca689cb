r"""Kernels from activations: the one implementation of ``code="auto"`` (and of every other
place that fits codes to an ANN's activations).

:func:`ann_activations` reads the ANN's post-ReLU activations at every spiking layer of its
converted graph; :func:`code_from_activations` fits one layer's kernels to them;
:func:`codes_from_activations` does it for every layer. :func:`quantize_tables` is the code's
``quantize`` computed from its threshold tables without the step loop (equal to the stepwise
rule), which makes the fit's search fast.
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

    1. ``top`` = the ``percentile`` (99.9th) of the positive activations (none at all: refused).
    2. The loss is the mean absolute conversion error :math:`\overline{|a - q(a)|}` over (a
       deterministic subsample of at most ``max_samples`` of) all activations, ``q`` the code's
       ``quantize``: it contains all three error terms of eqs. 18-19 (below the smallest code,
       above the largest, and inside the range). Zeros and negatives decode to 0.
    3. The largest decodable value (``theta_e(0)``, plus ``theta_c(0)`` for SC-TTFS) is kept in
       ``[top/2, 2 top]``; the decay of each kernel keeps ``theta(T-1) >= 1e-8 theta(0)``.
    4. Start: the best of 10 encoding decays spanning ``theta_e(T-1)/theta_e(0)`` from 1e-3 to 0.5,
       with (SC-TTFS) the calibration kernel covering half the first encoding gap,
       ``theta_c(0) = (theta_e(0) - theta_e(1))/2``, and the same decay.
       Then coordinate descent on the log-parameters with steps 0.4, 0.2, ..., 0.025.

    The search is deterministic and takes well under 0.5 s for ``T <= 16``.

    Parameters
    ----------
    acts : array-like
        Activations of one layer (any shape), e.g. from :func:`ann_activations`.
    T : int
        Window length in steps.
    kind : {"sc-ttfs", "ttfs"}
        Which code to fit.

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
    top = float(np.percentile(positive, percentile)) if positive.size else 1.0
    if a.size > max_samples:
        a = a[np.sort(np.random.default_rng(0).choice(a.size, max_samples, replace=False))]
    fit = _KernelFit(a, T, top, kind)
    return fit.code(fit.search())


class _KernelFit:
    """The search of :func:`code_from_activations` (log-parameters: theta(0) and k per kernel)."""

    STEPS = (0.4, 0.2, 0.1, 0.05, 0.025)

    def __init__(self, a: np.ndarray, T: int, top: float, kind: str):
        self.T, self.top, self.kind = T, top, kind
        self.v = a[a > 0]
        self.fixed = float(np.abs(a[a < 0]).sum())  # negatives decode to 0
        self.n = a.size
        self.steps = np.arange(T, dtype=np.float64)
        self.k_max = math.log(1e8) / (T - 1) if T > 1 else 1.0

    def code(self, p: np.ndarray) -> SCTTFSCode | TTFSCode:
        e0, ke = math.exp(p[0]), math.exp(p[1])
        enc = ThresholdKernel(alpha=e0, beta=0.0, k=ke)
        if self.kind == "ttfs":
            return TTFSCode(self.T, enc)
        return SCTTFSCode(self.T, enc, ThresholdKernel(alpha=math.exp(p[2]), beta=0.0, k=math.exp(p[3])))

    def loss(self, p: np.ndarray) -> float:
        e0, ke = math.exp(p[0]), math.exp(p[1])
        top = e0 + (math.exp(p[2]) if self.kind == "sc-ttfs" else 0.0)
        ks = (ke,) if self.kind == "ttfs" else (ke, math.exp(p[3]))
        if not 0.5 * self.top <= top <= 2.0 * self.top or any(k > self.k_max or k < 1e-6 for k in ks):
            return math.inf
        tab_e = e0 * np.exp(-ke * self.steps)
        tab_c = math.exp(p[2]) * np.exp(-ks[1] * self.steps) if self.kind == "sc-ttfs" else None
        q = quantize_tables(self.v, tab_e, tab_c)
        return (float(np.abs(self.v - q).sum()) + self.fixed) / self.n

    def starts(self) -> list:
        """The 10 starting points (one for ``T == 1``) of :meth:`search`."""
        T, starts = self.T, []
        for ratio in np.geomspace(1e-3, 0.5, 10) if T > 1 else [math.exp(-1.0)]:
            ke = -math.log(ratio) / (T - 1) if T > 1 else 1.0
            if self.kind == "ttfs":
                starts.append(np.array([math.log(self.top), math.log(ke)]))
            else:
                half_gap = 0.5 * (1.0 - math.exp(-ke))
                e0 = self.top / (1.0 + half_gap)
                starts.append(np.array([math.log(e0), math.log(ke), math.log(e0 * half_gap), math.log(ke)]))
        return starts

    def search(self) -> np.ndarray:
        starts = self.starts()
        losses = [self.loss(p) for p in starts]
        best = starts[int(np.argmin(losses))]
        best_loss = min(losses)
        free = [0, 2] if self.T == 1 else list(range(len(best)))  # with one step, k plays no role
        if self.kind == "ttfs" and self.T == 1:
            free = [0]
        for step in self.STEPS:
            for _sweep in range(3):
                improved = False
                for i in free:
                    cands = [best + step * j * np.eye(len(best))[i] for j in (-2, -1, 1, 2)]
                    cl = [self.loss(c) for c in cands]
                    j = int(np.argmin(cl))
                    if cl[j] < best_loss:
                        best, best_loss, improved = cands[j], cl[j], True
                if not improved:
                    break
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
