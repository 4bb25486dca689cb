r"""Code capacity (section 3.3): the paper's :math:`N(T) = \sum_{i=1}^{T} (i+1) = T(T+3)/2`, the
words reachable with given kernels and the distinct non-zero decoded values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..coding import SCTTFSCode, ThresholdKernel
from .errors import check_code
from .tables import Table

__all__ = ["DISTINCT_RTOL", "CodeCapacity", "code_capacity", "distinct_count", "capacity_table"]

#: Relative tolerance under which two decoded values count as the same value.
DISTINCT_RTOL = 1e-12


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
    code = check_code(code)
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
        from ..coding import PRESETS

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
