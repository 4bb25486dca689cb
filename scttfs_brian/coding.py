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
Every engine (numpy and torch here, Brian2 in :mod:`scttfs_brian.neurons`) reads that same table,
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


def _as_potentials(v: Any, name: str = "v") -> Any:
    """Validate potentials: numpy/torch float32/float64 (ints and lists are converted to float64)."""
    if _is_torch(v):
        torch = _torch_module()
        if v.is_complex() or v.dtype == torch.bool:
            raise TypeError(f"{name} must be a real float tensor (got dtype {v.dtype})")
        if not v.is_floating_point():
            v = v.to(torch.float64)
        elif v.dtype not in (torch.float32, torch.float64):
            v = v.to(torch.float32)
        bad = ~torch.isfinite(v)
        if bool(bad.any()):
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
    ``v``'s dtype (else ``None``), which is exactly :meth:`_CodeBase.decode` cast to ``v``'s dtype.
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


class _CodeBase:
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
        return stepwise_spike_times(_as_potentials(v), self.table_e, self.table_c)

    def encode_torch(self, v, *, compiled: bool = False, check: bool = True):
        """Spike times and decoded values of a torch tensor in one pass: the torch twin's path.

        Returns ``(t_enc, t_cal, z)``, spike times as tensors of ``v``'s dtype (``-1`` = no
        spike; ``.long()`` gives :meth:`spike_times`) and ``z = decode(t_enc, t_cal)`` in ``v``'s
        dtype. ``compiled=True`` runs the rule through :func:`compiled_stepwise` (same results).
        ``check=False`` skips the validation of ``v`` (for callers that validated their inputs).
        """
        if check:
            v = _as_potentials(v)
            if not _is_torch(v):
                raise TypeError(f"v must be a torch tensor for encode_torch (got {type(v).__name__})")
        tab_e, tab_c, dec_e, dec_c = self._torch_tables(v.dtype, v.device)
        if not compiled:
            return _stepwise_torch(v.detach(), tab_e, tab_c, dec_e, dec_c)
        flat = v.detach().reshape(-1)
        t_enc, t_cal, z = compiled_stepwise()(flat, tab_e, tab_c, dec_e, dec_c)
        return t_enc.reshape(v.shape), t_cal.reshape(v.shape), z.reshape(v.shape)

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
        v = _as_potentials(v)
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

    def __repr__(self) -> str:
        cal = f", calibrate={self.calibrate}" if self.calibrate is not None else ""
        kern = "encode" if self.calibrate is not None else "kernel"
        return f"{type(self).__name__}(T={self.T}, {kern}={self.encode}{cal})"


class SCTTFSCode(_CodeBase):
    """Self-calibrating TTFS code: an encoding spike and at most one calibration spike
    per window of ``T`` steps (eqs. 9-17).

    Parameters
    ----------
    T : int
        Window length in time steps (``>= 1``); spikes happen at steps ``0..T-1``.
    encode, calibrate : ThresholdKernel
        The encoding kernel :math:`\\theta_e` and the calibration kernel :math:`\\theta_c`.
    """

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


class TTFSCode(_CodeBase):
    """Single-spike TTFS code (T2FSNN-style baseline): one spike at the first step with
    ``v >= theta(t)``, decoded as ``theta(t_enc)`` (eqs. 1-7 with the kernel of eq. 14)."""

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


#: Either code; every spiking layer carries one.
Code = SCTTFSCode | TTFSCode


def closed_form_time(v: Any, kernel: ThresholdKernel, T: int) -> np.ndarray:
    """Eq. 15's closed form ``t = ceil(max(0, (beta - ln(v/alpha)) / k))`` as a spike step,
    ``-1`` where it falls outside the window (``t >= T`` or ``v <= 0``).

    A derived view for analysis: it agrees with the stepwise rule except possibly where
    ``v`` sits within rounding of a threshold, where the stepwise rule is the definition
    (SPEC section 1). The paper's stabilizer ``tau`` is not needed for ``v > 0``.
    """
    v = np.asarray(_as_potentials(v), dtype=np.float64)
    T = _window(T)
    out = np.full(v.shape, NO_SPIKE, dtype=np.int64)
    pos = v > 0
    with np.errstate(divide="ignore"):
        t = np.ceil(np.maximum(0.0, (kernel.beta - np.log(v[pos] / kernel.alpha)) / kernel.k))
    out[pos] = np.where(t < T, t, NO_SPIKE).astype(np.int64)
    return out
