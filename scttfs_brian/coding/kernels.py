r"""Threshold kernels (eq. 14), the paper's Table 1 presets, and the window length.

A threshold kernel is

.. math:: \theta(t) = \alpha \, e^{-k t + \beta}, \qquad \alpha > 0,\ k > 0,

evaluated at the integer steps ``t = 0, 1, ..., T-1`` of a coding window of ``T`` steps. Its
values are computed once per code as a float64 lookup table (:meth:`ThresholdKernel.table`), the
lookup table the paper suggests for hardware (section 3.3); every engine reads that same table.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ThresholdKernel", "PRESETS", "check_window", "check_codebook_size", "MAX_CODEWORDS"]

#: The most codewords a codebook operation (:meth:`~.codes.CodeBase.codebook`, the codeword
#: boundaries) may enumerate: ``N(T) = T(T+3)/2`` for SC-TTFS reaches it at T = 4470.
MAX_CODEWORDS = 10_000_000


def _real(name: str, value: Any, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number (got {value!r} of type {type(value).__name__}) {owner}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite (got {value}) {owner}")
    return value


def check_window(T: Any) -> int:
    """The window length ``T`` (time steps, an integer ``>= 1``) as an ``int``; refuses anything
    else with a message that says what a window is."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral):
        raise TypeError(f"T must be an integer number of time steps (got {T!r} of type {type(T).__name__})")
    if T < 1:
        raise ValueError(f"T must be >= 1 time step (got {T}); the coding window needs at least one step")
    return int(T)


def check_codebook_size(T: int, calibrated: bool) -> int:
    """The number of admissible codewords of a window of ``T`` steps (silence included:
    ``T(T+3)/2 + 1`` with calibration, ``T + 1`` without); refuses more than
    :data:`MAX_CODEWORDS` before anything is allocated."""
    T = check_window(T)
    n = T * (T + 3) // 2 + 1 if calibrated else T + 1
    if n > MAX_CODEWORDS:
        raise ValueError(
            f"T = {T} would need {n} codewords ({'T(T+3)/2 + 1' if calibrated else 'T + 1'}), more than the "
            f"limit of {MAX_CODEWORDS} for codebook operations; use a shorter window"
        )
    return n


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
            raise ValueError(
                f"k must be > 0 (got {self.k}) {owner}; the threshold must decay over the window"
            )
        if math.log(self.alpha) + self.beta >= math.log(np.finfo(np.float64).max):
            raise ValueError(
                f"theta(0) = alpha * exp(beta) overflows to inf (alpha {self.alpha}, beta {self.beta}) {owner}; "
                "use beta < ~700 (only alpha * exp(beta) matters: lower beta and raise alpha instead)"
            )

    def table(self, T: int) -> np.ndarray:
        """The float64 threshold values ``theta(0), ..., theta(T-1)``: the lookup table every
        engine uses (one computation, so the engines agree to the last bit)."""
        T = check_window(T)
        table = self.alpha * np.exp(-self.k * np.arange(T, dtype=np.float64) + self.beta)
        if not (np.all(np.isfinite(table)) and table[-1] > 0):
            t = int(np.argmin(np.isfinite(table) & (table > 0)))
            raise ValueError(
                f"theta({t}) of {self} is {table[t]} over a window of T = {T} steps (a threshold must be "
                "finite and > 0); use a smaller beta or k, or a shorter window"
            )
        return table

    def __call__(self, t: Any) -> np.ndarray:
        """``theta(t)`` for real ``t`` (analysis and plots; spike decisions use :meth:`table`)."""
        return self.alpha * np.exp(-self.k * np.asarray(t, dtype=np.float64) + self.beta)


#: Table 1 of the paper: kernel initializations for CIFAR10 and CIFAR100 (encode, calibrate).
PRESETS = {
    "cifar10": (ThresholdKernel(alpha=2.0, beta=-1.0, k=0.8), ThresholdKernel(alpha=1.0, beta=0.8, k=1.0)),
    "cifar100": (ThresholdKernel(alpha=4.5, beta=-1.0, k=0.9), ThresholdKernel(alpha=2.0, beta=-0.5, k=1.0)),
}
