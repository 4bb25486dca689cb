r"""The stepwise spike rule of SPEC section 1 (eqs. 9-13): the one definition of when a neuron
spikes, for numpy arrays and plain torch tensors.

For a neuron whose potential at the start of its window is ``v``, step by step
(``t = 0, 1, ..., T-1``):

1. encoding (eqs. 9-11): the first step with ``v >= theta_e(t)`` emits the encoding spike
   ``t_enc = t`` and resets subtractively, ``v <- v - theta_e(t)``;
2. calibration (eqs. 12-13): from the encoding step on (the same step included), the first step
   with ``v >= theta_c(t)`` emits the calibration spike ``t_cal = t``; then ``v <- 0`` and the
   neuron is silent until the window ends.

No encoding spike by ``T-1`` means silence (eq. 10); no calibration by ``T-1`` means none
(eq. 13). TTFS is the same with one kernel and no calibration. Decisions are made in the dtype of
the potentials (float32 or float64), the float64 threshold tables being cast to it. Spike times
are integers with ``-1`` (:data:`NO_SPIKE`) for "no spike" (the paper's ``t = inf``).

Eq. 15's closed form (:func:`closed_form_time`) is a derived view for analysis; where rounding
could make it differ at an exact threshold, the stepwise rule is the definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernels import ThresholdKernel, check_window

__all__ = [
    "NO_SPIKE",
    "as_potentials",
    "torch_table",
    "stepwise_torch",
    "stepwise_spike_times",
    "closed_form_time",
]

#: Spike time meaning "no spike in this window" (the paper's ``t = inf``).
NO_SPIKE = -1


def _torch_module():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but coding works without it
        return None
    return torch


def _is_torch(x: Any) -> bool:
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def torch_table(table: np.ndarray, dtype, device):
    """A code's lookup table as a torch tensor of ``dtype`` on ``device`` (a copy)."""
    torch = _torch_module()
    return torch.from_numpy(np.array(table, dtype=np.float64)).to(device=device, dtype=dtype)


def _torch_finite(v) -> bool:
    torch = _torch_module()
    if v.numel() == 0:
        return True
    lo, hi = torch.aminmax(v)  # one pass; NaN propagates
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


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
        if not _torch_finite(v):
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


def stepwise_torch(v, tab_e, tab_c=None, dec_e=None, dec_c=None):
    """The stepwise rule on a torch tensor, as straight-line tensor code (one ``torch.where`` per
    decision, so that an engine can fuse it with ``torch.compile``).

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


def stepwise_spike_times(v: Any, table_e: Any, table_c: Any | None = None):
    """The stepwise rule of SPEC section 1 (eqs. 9-13) on given threshold tables.

    ``v``: numpy array or torch tensor (validated by the caller); ``table_e``/``table_c``: the
    thresholds at steps ``0..T-1`` (numpy arrays, or torch tensors for trainable kernels);
    ``table_c=None`` is TTFS. Decisions are made in ``v``'s dtype. Returns int64 ``(t_enc, t_cal)``
    of ``v``'s shape and kind, ``-1`` = no spike. Codes call this; the torch engine's trainable
    activation calls it with tables computed from its parameters.
    """
    if _is_torch(v):
        torch = _torch_module()

        def as_table(tab):
            if isinstance(tab, torch.Tensor):
                return tab.detach().to(device=v.device, dtype=v.dtype)
            return torch_table(tab, v.dtype, v.device)

        tab_c = as_table(table_c) if table_c is not None else None
        t_enc, t_cal, _ = stepwise_torch(v.detach(), as_table(table_e), tab_c, None, None)
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


def closed_form_time(v: Any, kernel: ThresholdKernel, T: int) -> np.ndarray:
    """Eq. 15's closed form ``t = ceil(max(0, (beta - ln(v/alpha)) / k))`` as a spike step,
    ``-1`` where it falls outside the window (``t >= T`` or ``v <= 0``).

    A derived view for analysis: it agrees with the stepwise rule except possibly where
    ``v`` sits within rounding of a threshold, where the stepwise rule is the definition
    (SPEC section 1). The paper's stabilizer ``tau`` is not needed for ``v > 0``.
    """
    v = np.asarray(as_potentials(v), dtype=np.float64)
    T = check_window(T)
    out = np.full(v.shape, NO_SPIKE, dtype=np.int64)
    pos = v > 0
    with np.errstate(divide="ignore"):
        t = np.ceil(np.maximum(0.0, (kernel.beta - np.log(v[pos] / kernel.alpha)) / kernel.k))
    out[pos] = np.where(t < T, t, NO_SPIKE).astype(np.int64)
    return out
