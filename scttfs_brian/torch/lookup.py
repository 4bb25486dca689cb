r"""The torch engine's fast exact path: a layer's spike times and decoded values by lookup.

A code's spike times are a monotone step function of the potential, so its codeword boundaries
(:func:`scttfs_brian.coding.spike_boundaries`, derived from the stepwise rule) turn the T-step
loop of eqs. 9-13 into "how many boundaries are <= v" and a gather of that word's spike times and
decoded value (eqs. 16-17). Two forms, identical bit for bit to the stepwise rule (tested):

* eager: one ``torch.bucketize`` over the boundaries, gathers, and the spike counts from one
  ``bincount`` (:func:`word_lookup`);
* compiled: one comparison per boundary, the gathers and the spike counts fused into one
  ``torch.compile`` pass (:func:`compiled_lookup`).

The twin's default, ``compiled="auto"`` (:func:`encode_layer`), compiles the layers of a network
whose spiking layers together hold at least :data:`AUTO_COMPILE_MIN` potentials per call (and
whose code has at most :data:`AUTO_COMPILE_MAX_BOUNDS` boundaries), where compiling (seconds,
once per variant) pays back, and runs smaller networks eagerly; on a device where ``torch.compile`` fails (no C++ compiler on
CPU, no triton on GPU) it warns once and stays eager there (:data:`COMPILE_STATE`).

``method="stepwise"`` runs the T-step loop instead (:func:`scttfs_brian.coding.stepwise_torch`,
eager or compiled by :func:`compiled_stepwise`): the reference, and the fallback, with a
warning, where a code has no boundaries in a dtype.

The engine keeps what it derives from a code (boundaries, tables on a device) in caches keyed by
``(code, dtype, device)``; codes are immutable and hashable, and carry no cache themselves.
"""

from __future__ import annotations

import functools
import types
import warnings
from typing import Any

import numpy as np
import torch

from ..coding import Boundaries, CodeBase, as_potentials, stepwise_torch, torch_table

__all__ = [
    "METHODS",
    "encode",
    "encode_layer",
    "boundaries",
    "lookup_tables",
    "word_lookup",
    "all_finite",
    "compiled_lookup",
    "compiled_stepwise",
    "AUTO_COMPILE_MIN",
    "AUTO_COMPILE_MAX_BOUNDS",
    "COMPILE_STATE",
]

#: How a spiking layer maps potentials to spike times: the codebook lookup (default) or the
#: T-step loop of the rule.
METHODS = ("lookup", "stepwise")

_CACHE_SIZE = 1024  # codes x dtypes x devices kept; a few kB each


def _method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    return method


def boundaries(code: CodeBase, dtype) -> Boundaries:
    """``code.boundaries(dtype)`` (numpy or torch float32 / float64), derived once per code and
    dtype and kept by the engine (the same object on later calls)."""
    if isinstance(dtype, torch.dtype):
        dtype = torch.empty((), dtype=dtype).numpy().dtype
    return _boundaries(code, np.dtype(dtype))


@functools.lru_cache(maxsize=_CACHE_SIZE, typed=True)
def _boundaries(code: CodeBase, dtype: np.dtype) -> Boundaries:
    return code.boundaries(dtype)


def lookup_tables(code: CodeBase, dtype: torch.dtype, device: Any) -> dict | None:
    """:func:`boundaries` as torch tensors on ``device`` (made once per code, dtype and device):
    ``bounds`` and per-word ``z`` (decoded value), ``t_enc_v``/``t_cal_v`` (``dtype``),
    ``t_enc``/``t_cal`` (int64), ``cal`` (0/1 int64); the same with suffix ``_c`` padded for the
    compiled lookup (NaN boundaries, never counted, to a multiple of 8: fewer recompilations).
    ``None`` for other dtypes, and (with a warning, once) when the rule has no boundaries for
    the code's tables: callers then run the stepwise loop."""
    return _lookup_tables(code, dtype, str(device))


@functools.lru_cache(maxsize=_CACHE_SIZE, typed=True)
def _lookup_tables(code: CodeBase, dtype: torch.dtype, device: str) -> dict | None:
    if dtype not in (torch.float32, torch.float64):
        return None
    try:
        b = boundaries(code, dtype)
    except RuntimeError as err:
        warnings.warn(f"{code!r} in {dtype}: {err}; the torch twin runs the stepwise loop", stacklevel=4)
        return None
    n_pad = -len(b.bounds) % 8 if len(b.bounds) else 8
    words = {
        "z": (b.value, dtype), "t_enc_v": (b.t_enc, dtype), "t_cal_v": (b.t_cal, dtype),
        "t_enc": (b.t_enc, torch.int64), "t_cal": (b.t_cal, torch.int64),
        "cal": ((b.t_cal >= 0).astype(np.int64), torch.int64),
    }  # fmt: skip
    out = {"bounds": torch.from_numpy(b.bounds.copy()).to(device)}
    out["bounds_c"] = torch.from_numpy(np.concatenate([b.bounds, np.full(n_pad, np.nan, b.bounds.dtype)])).to(
        device
    )
    for k, (a, dt) in words.items():
        out[k] = torch.from_numpy(np.asarray(a)).to(device=device, dtype=dt)
        out[k + "_c"] = torch.from_numpy(np.concatenate([a, np.repeat(a[-1:], n_pad)])).to(
            device=device, dtype=dt
        )
    return out


@functools.lru_cache(maxsize=_CACHE_SIZE, typed=True)
def _code_tables(code: CodeBase, dtype: torch.dtype, device: str) -> tuple:
    """Thresholds in ``dtype`` and float64 decoding tables on ``device`` (the stepwise loop's)."""
    sc = code.calibrate is not None
    return (
        torch_table(code.table_e, dtype, device),
        torch_table(code.table_c, dtype, device) if sc else None,
        torch_table(code.table_e, torch.float64, device),
        torch_table(code.table_c, torch.float64, device)
        if sc
        else torch.zeros(code.T, dtype=torch.float64, device=device),
    )


def all_finite(v: torch.Tensor) -> bool:
    """Whether a tensor holds no NaN/inf: one ``aminmax`` pass (NaN propagates)."""
    if v.numel() == 0:
        return True
    lo, hi = torch.aminmax(v)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def word_lookup(parts, bounds, tables, counts: bool, search: bool):
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
    v = parts[0]
    for h in parts[1:]:
        v = v + h
    if search:
        return _searched(v, bounds, tables, counts)
    w = (v >= bounds[0]).to(torch.int32)
    for j in range(1, bounds.shape[0]):
        w = w + (v >= bounds[j]).to(torch.int32)
    if not counts:
        return [tab[w] for tab in tables], None
    out = [tab[w] for tab in tables[:-1]]
    flat = w.flatten(1)
    n = torch.stack([(flat > 0).sum(1), tables[-1][flat].sum(1, dtype=torch.int64)], dim=1)
    return out, n


def _searched(v, bounds, tables, counts: bool):
    """:func:`word_lookup` eager: the same words and values with the cheapest eager ops (int32
    words from one ``bucketize``, ``index_select`` gathers, the counts from one ``bincount`` of
    (sample, word) pairs instead of a gather per potential)."""
    w = torch.bucketize(v, bounds, right=True, out_int32=True)
    flat = w.reshape(-1)
    out = [tab.index_select(0, flat).reshape(v.shape) for tab in (tables[:-1] if counts else tables)]
    if not counts:
        return out, None
    n_samples, n_words = v.shape[0], tables[-1].shape[0]
    offset = torch.arange(n_samples, dtype=torch.int32, device=v.device) * n_words
    hist = torch.bincount((w.flatten(1) + offset[:, None]).reshape(-1), minlength=n_samples * n_words)
    hist = hist.reshape(n_samples, n_words)
    return out, torch.stack([hist[:, 1:].sum(1), (hist * tables[-1]).sum(1)], dim=1)


_WORD_LOOKUP = word_lookup  # the function compiled_lookup copies (even while word_lookup is wrapped)
_COMPILED_LOOKUP: dict = {}
_COMPILED_STEPWISE: list = []


def compiled_lookup(key: Any = None):
    """:func:`word_lookup` compiled by ``torch.compile`` (inductor): the comparisons against
    every boundary, the gathers and the spike counts fused into one pass over the potentials;
    same comparisons in the same dtype, so the same words (tested). The first call for a new
    number of boundaries, dtype or set of outputs compiles (seconds, needs a C++ compiler).

    ``key`` names one variant (the callers use dtype, padded number of boundaries, number of
    parts and outputs): each key gets its own copy of the function's code, so that dynamo's
    recompilation limit (per code object) counts the recompilations of one variant only
    (shapes), not every code and dtype of a network or a test session."""
    if key not in _COMPILED_LOOKUP:
        fn = types.FunctionType(_WORD_LOOKUP.__code__.replace(), _WORD_LOOKUP.__globals__, "word_lookup")
        _COMPILED_LOOKUP[key] = torch.compile(fn, dynamic=True)
    return _COMPILED_LOOKUP[key]


def compiled_stepwise():
    """:func:`scttfs_brian.coding.stepwise_torch` compiled by ``torch.compile`` (inductor): one
    fused loop over the potentials instead of ``~6 T`` tensor passes. It runs the same
    comparisons and subtractions in the same dtype, so its results are identical (tested); the
    first call for a new ``T`` or dtype compiles (seconds, needs a C++ compiler), later calls and
    other shapes reuse it."""
    if not _COMPILED_STEPWISE:
        _COMPILED_STEPWISE.append(torch.compile(stepwise_torch, dynamic=True))
    return _COMPILED_STEPWISE[0]


def _stepwise(code: CodeBase, v: torch.Tensor, compiled: bool):
    """:func:`encode` by the T-step loop (the reference; the fallback where the boundaries
    cannot be used)."""
    tab_e, tab_c, dec_e, dec_c = _code_tables(code, v.dtype, str(v.device))
    if not compiled:
        return stepwise_torch(v, tab_e, tab_c, dec_e, dec_c)
    t_enc, t_cal, z = compiled_stepwise()(v.reshape(-1), tab_e, tab_c, dec_e, dec_c)
    return t_enc.reshape(v.shape), t_cal.reshape(v.shape), z.reshape(v.shape)


def encode(
    code: CodeBase, v: torch.Tensor, *, compiled: bool = False, check: bool = True, method: str = "lookup"
):
    """Spike times and decoded values of a torch tensor in one pass: the torch twin's path.

    Returns ``(t_enc, t_cal, z)``, spike times as tensors of ``v``'s dtype (``-1`` = no spike;
    ``.long()`` gives ``code.spike_times(v)``) and ``z = code.decode(t_enc, t_cal)`` in ``v``'s
    dtype. ``method="lookup"`` looks the potentials up in the code's boundaries (one
    ``bucketize`` eager; ``compiled=True``: one fused pass through :func:`compiled_lookup`)
    instead of running the T-step loop; ``method="stepwise"`` runs the loop (``compiled=True``:
    :func:`compiled_stepwise`). Both give the stepwise rule's results, bit for bit (tested).
    ``check=False`` skips the validation of ``v`` (for callers that validated their inputs;
    non-finite potentials then get the loop's result: NaN and -inf are silent, +inf the largest
    word).
    """
    _method(method)
    if check:
        v = as_potentials(v)
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"v must be a torch tensor for encode (got {type(v).__name__})")
    v = v.detach()
    fast = lookup_tables(code, v.dtype, v.device) if method == "lookup" else None
    if fast is None or (not compiled and not all_finite(v)):  # bucketize would put NaN last
        return _stepwise(code, v, compiled)
    tables = (fast["t_enc_v"], fast["t_cal_v"], fast["z"])
    if not compiled:
        (t_enc, t_cal, z), _ = word_lookup([v], fast["bounds"], tables, False, True)
        return t_enc, t_cal, z
    tables = tuple(fast[k + "_c"] for k in ("t_enc_v", "t_cal_v", "z"))
    key = (v.dtype, len(fast["bounds_c"]), 1, "encode")
    (t_enc, t_cal, z), _ = compiled_lookup(key)([v.reshape(-1)], fast["bounds_c"], tables, False, False)
    return t_enc.reshape(v.shape), t_cal.reshape(v.shape), z.reshape(v.shape)


#: ``compiled="auto"``: a layer takes the compiled lookup when one call holds at least this many
#: potentials, counted over the whole network by the twin (``auto_size``): where compiling,
#: seconds once per variant, pays back. Counted per layer, the digits CNN at batch 128 (largest
#: layer 262,144 of 638,976 potentials) stayed eager and missed the ANN's time by x1.6-3.6.
AUTO_COMPILE_MIN = 1 << 19
#: ... and its code has at most this many boundaries (the compiled lookup unrolls one comparison
#: per boundary: long windows, e.g. SC-TTFS with T > 9, compile for minutes and stay eager)
AUTO_COMPILE_MAX_BOUNDS = 64

#: ``compiled="auto"``: device type -> ``True`` (``torch.compile`` worked there) or ``False`` (it
#: failed once: that device stays on the eager lookup); clear it to try again.
COMPILE_STATE: dict = {}


def _auto(v0: torch.Tensor, fast: dict, size: int | None) -> bool:
    return (
        (v0.numel() if size is None else size) >= AUTO_COMPILE_MIN
        and len(fast["bounds"]) <= AUTO_COMPILE_MAX_BOUNDS
        and COMPILE_STATE.get(v0.device.type) is not False
    )


def encode_layer(
    code: CodeBase,
    parts,
    *,
    compiled: bool | str = False,
    times: bool = False,
    counts: bool = True,
    method: str = "lookup",
    auto_size: int | None = None,
):
    """The twin's spiking layer: ``v = parts[0] + parts[1] + ...`` (bias first, then each
    input, batch first), then its decoded value ``z``, int64 spike times (when ``times``) and
    the spikes per sample (``(B, 2)`` int64, when ``counts``). ``compiled`` and ``method`` as
    for :func:`encode`; ``compiled="auto"``: the compiled lookup for layers of at least
    :data:`AUTO_COMPILE_MIN` potentials whose code has at most :data:`AUTO_COMPILE_MAX_BOUNDS`
    boundaries, where ``torch.compile`` works on the device (the first
    failure to compile there warns once and leaves the device on the eager lookup), else the
    eager one; all give the same results. Potentials of finite inputs and finite weights need
    no check, except that float overflow can make them non-finite: the eager lookup then runs
    the loop, the compiled one is exact there too. Returns ``(z, (t_enc, t_cal) or None,
    counts or None)``. ``auto_size``: the potentials per call that ``compiled="auto"`` compares
    with :data:`AUTO_COMPILE_MIN` (default: this layer's; :class:`~.executor.GraphModule`
    passes its whole network's)."""
    v0 = parts[0]
    fast = lookup_tables(code, v0.dtype, v0.device) if _method(method) == "lookup" else None
    if compiled == "auto":
        compiled = False
        if fast is not None and _auto(v0, fast, auto_size):
            kind = v0.device.type
            try:
                out = _lookup_layer(fast, parts, True, times, counts)
            except Exception as err:  # no C++ compiler / triton: inductor's errors vary by version
                if COMPILE_STATE.get(kind):
                    raise  # it compiled here before: a real error
                COMPILE_STATE[kind] = False
                warnings.warn(
                    f"torch.compile failed on {kind} ({type(err).__name__}: {str(err)[:200]}); the torch twin "
                    "uses the eager codebook lookup there (same results, slower); pass compiled=False to "
                    "silence this",
                    stacklevel=2,
                )
            else:
                COMPILE_STATE[kind] = True
                return out
    if fast is not None and not compiled:
        v = parts[0]
        for h in parts[1:]:
            v = v + h
        parts = [v]
        if not all_finite(v):
            fast = None
    if fast is None:
        v = parts[0]
        for h in parts[1:]:
            v = v + h
        t_enc, t_cal, z = _stepwise(code, v.detach(), compiled)
        n = None
        if counts:
            n = torch.stack([(t_enc >= 0).flatten(1).sum(1), (t_cal >= 0).flatten(1).sum(1)], dim=1)
        return z, ((t_enc.long(), t_cal.long()) if times else None), n
    return _lookup_layer(fast, parts, compiled, times, counts)


def _lookup_layer(fast: dict, parts, compiled: bool, times: bool, counts: bool):
    sfx = "_c" if compiled else ""
    names = ("z", "t_enc", "t_cal") if times else ("z",)
    tables = tuple(fast[k + sfx] for k in names) + ((fast["cal" + sfx],) if counts else ())
    key = (parts[0].dtype, len(fast["bounds_c"]), len(parts), times, counts)
    lookup = compiled_lookup(key) if compiled else word_lookup
    out, n = lookup(list(parts), fast["bounds" + sfx], tables, counts, not compiled)
    return out[0], (tuple(out[1:]) if times else None), n
