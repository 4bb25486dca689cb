r"""The error bounds of eqs. 18 (TTFS) and 19 (SC-TTFS) as the paper writes them, next to the
realized errors on the same partition of the neurons.

For the activations :math:`a_i` of a layer of :math:`M` neurons and a code, the paper splits the
neurons into :math:`L` below the smallest decodable value :math:`s(T)`, :math:`U` above the
largest :math:`s(0)` (TTFS) or :math:`s^e(0) + s^c(0)` (SC-TTFS), and the :math:`M - (U + L)` in
range, and writes

.. math::

    e_a &\le \sum_{j=1}^{L} |a_j - s(T)| + \sum_{k=1}^{M-(U+L)} |s(f-1) - s(f)|
            + \sum_{i=1}^{U} |a_i - s(0)| \qquad (18)

    e_e &\le \sum_{j=1}^{L} |a_j - s^e(T)| + \sum_{i=1}^{U} |a_i - s^e(0) - s^c(0)|
            + \sum_{k=1}^{M-(U+L)} |s^e(f_e-1) - s^e(f_e) - s^c(f_c)| \qquad (19)

(lower clip, quantization, upper clip). :func:`error_bounds` evaluates each term as written and
the realized error :math:`|\mathrm{ReLU}(a) - z|`, :math:`z = ` ``code.quantize(a)``, summed on the
same neurons.

Reading the paper's symbols in this project's window (steps ``0 .. T-1``, ``docs/spec.md``):
:math:`s(T)` is "the smallest decoded value", ``code.min_value = theta_e(T-1)``; :math:`s(0)` the
largest, ``code.max_value``; :math:`f`, :math:`f_e`, :math:`f_c` the neuron's own spike times
(``code.spike_times``; :math:`s^c(f_c) = 0` without a calibration spike). Eq. 19 leaves
:math:`s^e(f_e - 1)` undefined for :math:`f_e = 0`; it is taken as the top of the range,
``code.max_value`` (for TTFS this makes the width 0: an in-range neuron firing at step 0 has
``a == s(0)``). The kernel's value at ``t = -1`` would not bound the error of those neurons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import as_activations, check_code

__all__ = ["ErrorBounds", "error_bounds", "TERMS"]

#: The three terms of eqs. 18-19, in the order the record lists them.
TERMS = ("lower_clip", "quantization", "upper_clip")


@dataclass(frozen=True)
class ErrorBounds:
    r"""The terms of eq. 18 (TTFS) or eq. 19 (SC-TTFS) for one layer, as written and as realized.

    All errors are sums over neurons (divide by :attr:`n` for a mean per neuron).

    Attributes
    ----------
    equation : int
        18 for a TTFS code, 19 for an SC-TTFS code.
    lower_clip : float
        :math:`\sum_{j \in L} |a_j - s(T)|`, as written: the error of a neuron clipped to the last
        step of the window (eq. 7's ``clip(., 0, T)``).
    quantization : float
        :math:`\sum_{k \in \text{range}} |s^e(f_e-1) - s^e(f_e) - s^c(f_c)|` (eq. 19), or
        :math:`|s(f-1) - s(f)|` (eq. 18): the width of the interval of potentials that gives the
        neuron's spike times, less the decoded calibration.
    upper_clip : float
        :math:`\sum_{i \in U} |a_i - \max|`, ``max = s(0)`` or ``s^e(0) + s^c(0)``.
    total : float
        ``lower_clip + quantization + upper_clip``: the right-hand side of eq. 18 / 19.
    realized_lower_clip, realized_quantization, realized_upper_clip : float
        :math:`\sum |\mathrm{ReLU}(a) - z|` over the same neurons. A neuron below the range is
        silent (eq. 10), so ``realized_lower_clip`` is :math:`\sum_{j \in L} a_j`.
    realized_total : float
        :math:`\sum |\mathrm{ReLU}(a) - z|` over all neurons (summed separately, so it equals the
        three realized terms up to rounding of correctly rounded sums).
    lower_clip_silent : float
        :math:`L \cdot s(T)`: a bound that holds for silent neurons (each has ``a < s(T)``),
        where the written ``lower_clip`` does not (see Notes of :func:`error_bounds`).
    n_below, n_in_range, n_above, n_zero : int
        ``L``, ``M - (U + L)`` (activations ``> 0`` in range), ``U``, activations ``<= 0``.
    n_lower_clip_violated : int
        ``L`` neurons whose realized error exceeds their written term, ``a > |a - s(T)|``
        (``a > s(T)/2``).
    min_value, max_value : float
        ``s(T)`` and the largest value.
    """

    equation: int
    lower_clip: float
    quantization: float
    upper_clip: float
    total: float
    realized_lower_clip: float
    realized_quantization: float
    realized_upper_clip: float
    realized_total: float
    lower_clip_silent: float
    n_below: int
    n_in_range: int
    n_above: int
    n_zero: int
    n_lower_clip_violated: int
    min_value: float
    max_value: float

    @property
    def n(self) -> int:
        """Number of neurons ``M``."""
        return self.n_below + self.n_in_range + self.n_above + self.n_zero

    def bound(self, term: str) -> float:
        """The written term ``term`` (one of :data:`TERMS` or ``"total"``)."""
        return float(getattr(self, self._term(term)))

    def realized(self, term: str) -> float:
        """The realized error on ``term``'s neurons (or ``"total"``)."""
        return float(getattr(self, "realized_" + self._term(term)))

    def holds(self, rtol: float = 1e-12, atol: float = 1e-12) -> dict[str, bool]:
        """``{term: realized <= bound}`` for each of :data:`TERMS` and ``"total"``, with tolerance
        ``rtol * bound + atol`` for the rounding of the sums."""
        return {
            t: self.realized(t) <= self.bound(t) * (1 + rtol) + atol * max(self.n, 1)
            for t in (*TERMS, "total")
        }

    def tightness(self) -> dict[str, float]:
        """``{term: realized / bound}`` (NaN where the bound is 0): 1 where the bound is reached."""
        return {
            t: self.realized(t) / self.bound(t) if self.bound(t) > 0 else math.nan for t in (*TERMS, "total")
        }

    def as_dict(self, per_neuron: bool = False) -> dict[str, float]:
        """The written and realized terms, ``realized_<term>`` next to ``<term>``; divided by ``n``
        when ``per_neuron``."""
        d = max(self.n, 1) if per_neuron else 1
        out = {}
        for t in (*TERMS, "total"):
            out[t] = self.bound(t) / d
            out["realized_" + t] = self.realized(t) / d
        out["lower_clip_silent"] = self.lower_clip_silent / d
        return out

    @staticmethod
    def _term(term: str) -> str:
        if term not in (*TERMS, "total"):
            raise ValueError(f"term must be one of {(*TERMS, 'total')} (got {term!r})")
        return term


def error_bounds(activations: Any, code: Any) -> ErrorBounds:
    r"""The terms of eq. 18 (TTFS code) or eq. 19 (SC-TTFS code) as written, and realized.

    Parameters
    ----------
    activations : array_like or torch tensor
        The ANN activations ``a`` of one layer (any shape; flattened). Pre-activations may be
        given: the error is measured against :math:`\mathrm{ReLU}(a)`, and ``a <= 0`` neither
        spikes nor counts in any term.
    code : SCTTFSCode or TTFSCode

    Returns
    -------
    ErrorBounds

    Notes
    -----
    When each written term is reached, as the paper's argument has it:

    * **upper clip**: with equality for every input; a neuron above the range fires both spikes at
      step 0 (TTFS: its one spike) and decodes the largest value exactly.
    * **quantization**: a supremum. The neuron's potential lies in
      :math:`[s^e(f_e), s^e(f_e-1))`, so its error is the width less :math:`s^c(f_c)` less the
      distance to the top, :math:`s^e(f_e-1) - a`; an input one ulp below :math:`s^e(f_e-1)`
      (it just misses the earlier step) reaches the term to rounding.
    * **lower clip**: as written, :math:`|a - s(T)|` is the error of a neuron clipped *to* the
      last step (eq. 7, which sends it at :math:`s(T)`). Under eq. 10, which this code follows
      for both TTFS and SC-TTFS, a neuron below the range is silent and its error is :math:`a`
      itself: the written term bounds it only where :math:`a \le s(T)/2`, and is 0 where the
      error approaches its largest value :math:`s(T)`. ``lower_clip_silent`` (:math:`L\,s(T)`)
      is the bound for silent neurons, approached as :math:`a \to s(T)`. So eqs. 18-19 hold as
      written with eq. 7's clipping; with silence, only after the lower term is read as
      :math:`L\,s(T)`. ``holds()`` reports each term.
    """
    code = check_code(code)
    a = as_activations(activations)
    lo, hi = float(code.min_value), float(code.max_value)
    zero = a <= 0
    below = (a > 0) & (a < lo)
    above = a > hi
    inside = ~(zero | below | above)

    err = np.abs(np.maximum(a, 0.0) - code.quantize(a))
    t_enc, t_cal = code.spike_times(a[inside])
    e_tab = code.table_e
    top = np.where(t_enc >= 1, e_tab[np.clip(t_enc - 1, 0, None)], hi)
    cal = np.zeros(t_enc.shape) if code.table_c is None else np.where(t_cal >= 0, code.table_c[t_cal], 0.0)
    width = np.abs(top - e_tab[t_enc] - cal)

    written = {
        "lower_clip": math.fsum(np.abs(a[below] - lo)),
        "quantization": math.fsum(width),
        "upper_clip": math.fsum(np.abs(a[above] - hi)),
    }
    return ErrorBounds(
        equation=19 if code.has_calibration else 18,
        **written,
        total=math.fsum(written.values()),
        realized_lower_clip=math.fsum(err[below]),
        realized_quantization=math.fsum(err[inside]),
        realized_upper_clip=math.fsum(err[above]),
        realized_total=math.fsum(err),
        lower_clip_silent=int(below.sum()) * lo,
        n_below=int(below.sum()),
        n_in_range=int(inside.sum()),
        n_above=int(above.sum()),
        n_zero=int(zero.sum()),
        n_lower_clip_violated=int(np.sum(a[below] > np.abs(a[below] - lo))),
        min_value=lo,
        max_value=hi,
    )
