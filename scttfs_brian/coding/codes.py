r"""The SC-TTFS and TTFS codes (eqs. 9-17): one rule and one decode table per code.

A code is a window of ``T`` steps, its kernels (:mod:`.kernels`) and their float64 lookup tables
``table_e`` (and ``table_c`` for SC-TTFS). Its spike times are the stepwise rule (:mod:`.rule`) on
those tables; its decoded value (eqs. 16-17) is ``z = theta_e(t_enc) + theta_c(t_cal)``, each term
0 when the spike is absent. TTFS (the T2FSNN-style baseline) is the same with one kernel, one spike
and no calibration. Every engine (numpy and torch, Brian2 in :mod:`scttfs_brian.brian.neurons`)
reads the same tables, which is what makes them agree spike for spike.

A new window code is a new file here: a :class:`CodeBase` subclass with its tables and ``kind``,
registered in :data:`CODE_KINDS`. Codes are immutable and hashable (compared by value), so
engines may key their own caches by them; nothing engine-specific is stored on a code.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .boundaries import Boundaries, spike_boundaries
from .kernels import ThresholdKernel, check_codebook_size, check_window
from .rule import NO_SPIKE, _is_torch, _torch_module, as_potentials, stepwise_spike_times, torch_table

__all__ = ["CodeBase", "SCTTFSCode", "TTFSCode", "Code", "CodeWord", "CODE_KINDS", "code_from_dict"]


class CodeWord(NamedTuple):
    """One spike sequence of a code: spike times (``-1`` = absent) and its decoded value."""

    t_enc: int
    t_cal: int
    value: float


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

    def boundaries(self, dtype) -> Boundaries:
        """The code's :class:`~.boundaries.Boundaries` for potentials of ``dtype`` (numpy or torch
        float32 / float64): :func:`~.boundaries.spike_boundaries` of its tables, derived on each
        call (milliseconds; the torch engine keeps them, :func:`scttfs_brian.torch.boundaries`).
        Raises ``RuntimeError`` where the rule has no boundaries for these tables."""
        torch = _torch_module()
        if torch is not None and isinstance(dtype, torch.dtype):
            dtype = torch.empty((), dtype=dtype).numpy().dtype
        return spike_boundaries(self.table_e, self.table_c, np.dtype(dtype))

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
            raise ValueError(
                f"{name} must lie in [-1, {self.T - 1}] (got values from {t.min()} to {t.max()})"
            )
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
        check_codebook_size(self.T, self.calibrate is not None)
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
        self.T = check_window(T)
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
        if not isinstance(other, SCTTFSCode):
            return False
        return (self.T, self.encode, self.calibrate) == (other.T, other.encode, other.calibrate)

    def __hash__(self) -> int:
        return hash(("SCTTFSCode", self.T, self.encode, self.calibrate))


class TTFSCode(CodeBase):
    """Single-spike TTFS code (T2FSNN-style baseline): one spike at the first step with
    ``v >= theta(t)``, decoded as ``theta(t_enc)`` (eqs. 1-7 with the kernel of eq. 14)."""

    kind = "ttfs"

    def __init__(self, T: int, kernel: ThresholdKernel):
        self.T = check_window(T)
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
