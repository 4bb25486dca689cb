r"""The torch engine's fast exact path: a layer's spike times and decoded values by lookup.

A code's spike times are a monotone step function of the potential, so its codeword boundaries
(:func:`scttfs_brian.coding.spike_boundaries`, derived from the stepwise rule) turn the T-step
loop of eqs. 9-13 into "how many boundaries are <= v" and that word's spike times and decoded
value (eqs. 16-17). Two forms, identical bit for bit to the stepwise rule (tested):

* eager: one ``torch.bucketize`` over the boundaries, gathers, and the spike counts from one
  ``bincount`` (:func:`word_lookup`);
* compiled: one comparison per boundary, each selecting the next word's values (no index, no
  gather), the spike counts and the average poolings that the next layers start with, fused
  into one ``torch.compile`` call per layer (:func:`compiled_lookup`, :func:`lookup_and_pool`).

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
    "select_lookup",
    "all_finite",
    "compiled_lookup",
    "lookup_and_pool",
    "avg_pool",
    "compiled_stepwise",
    "AUTO_COMPILE_MIN",
    "AUTO_COMPILE_MAX_BOUNDS",
    "FUSED_POOL_MAX_WINDOW",
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
    ``t_enc``/``t_cal`` (int64), ``cal`` (0/1 int64), ``z_signed`` (``z`` with the sign bit set
    on the words with a calibration spike); the same with suffix ``_c`` padded for the compiled
    lookup (NaN boundaries, never counted, to a multiple of 8: fewer recompilations; integer
    tables in int32, whose selects vectorize as the float ones do).
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
    if np.signbit(b.value).any():  # decoded values are sums of positive thresholds
        warnings.warn(f"{code!r} in {dtype}: a decoded value below +0; the torch twin runs the stepwise loop", stacklevel=4)
        return None
    n_pad = -len(b.bounds) % 8 if len(b.bounds) else 8
    words = {
        "z": (b.value, dtype), "t_enc_v": (b.t_enc, dtype), "t_cal_v": (b.t_cal, dtype),
        "t_enc": (b.t_enc, torch.int64), "t_cal": (b.t_cal, torch.int64),
        "cal": ((b.t_cal >= 0).astype(np.int64), torch.int64),
        "z_signed": (np.where(b.t_cal >= 0, -b.value, b.value), dtype),
    }  # fmt: skip
    out = {"bounds": torch.from_numpy(b.bounds.copy()).to(device)}
    out["bounds_c"] = torch.from_numpy(np.concatenate([b.bounds, np.full(n_pad, np.nan, b.bounds.dtype)])).to(
        device
    )
    for k, (a, dt) in words.items():
        out[k] = torch.from_numpy(np.asarray(a)).to(device=device, dtype=dt)
        out[k + "_c"] = torch.from_numpy(np.concatenate([a, np.repeat(a[-1:], n_pad)])).to(
            device=device, dtype=torch.int32 if dt == torch.int64 else dt
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


def word_lookup(parts, bounds, tables, counts: bool):
    """The eager codebook lookup (the twin's ``compiled=False`` path).

    ``v = parts[0] + parts[1] + ...`` (added in that order, as the twin adds a layer's bias and
    inputs); ``bounds``: :attr:`Boundaries.bounds` as a tensor of ``v``'s dtype; ``tables``:
    per-word tables to look up (e.g. the decoded value in ``v``'s dtype). The word ``w =
    #{j: v >= bounds[j]}`` comes from one ``torch.bucketize`` (NaN would land on the last word:
    callers exclude it), the values from gathers. ``counts=True`` also returns the spikes per
    sample, ``(B, 2)`` int64: encoding (``w > 0``) and calibration (``tables[-1]`` is then the
    per-word 0/1 calibration flag, not returned), from one ``bincount`` of (sample, word) pairs.
    Returns ``(looked up, counts or None)``; :func:`select_lookup` is the compiled form.
    """
    v = parts[0]
    for h in parts[1:]:
        v = v + h
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


def select_lookup(parts, bounds, signed, tables, counts: bool):
    """The codebook lookup as straight-line tensor code, which ``torch.compile`` fuses into one
    pass over the potentials (:func:`compiled_lookup`): the same words as :func:`word_lookup`,
    without an index or a gather.

    ``v = parts[0] + parts[1] + ...`` (added in that order); ``bounds``: the padded boundaries
    (``lookup_tables(...)["bounds_c"]``: ascending, NaN padding last). A chain of selects,
    ``out = tab[j + 1] where v >= bounds[j] else out`` for ``j = 0, 1, ...`` from ``tab[0]``:
    the bounds ascend, so the comparisons that hold are ``j < w`` and the last one leaves
    ``tab[w]`` (NaN compares false: word 0, as in the rule). ``signed``: the decoded value per
    word with the sign bit set on the words with a calibration spike (``"z_signed_c"``; decoded
    values are ``>= +0``, so no bit of them is lost): its one chain gives ``z = |signed[w]|``
    and, from the sign bit, the calibration spike. ``tables``: further per-word tables (int32
    ones come back as int64: the spike times). ``counts=True`` also returns the spikes per
    sample, ``(B, 2)`` int64: encoding (``v >= bounds[0]``, i.e. ``w > 0``) and calibration
    (summed in int32). Returns ``(z, looked up tables, counts or None)``.
    """
    v = parts[0]
    for h in parts[1:]:
        v = v + h
    zs = signed[0].expand(v.shape)
    out = [tab[0].expand(v.shape) for tab in tables]
    spiked = v >= bounds[0]  # w > 0
    for j in range(bounds.shape[0]):
        hit = spiked if j == 0 else v >= bounds[j]
        zs = torch.where(hit, signed[j + 1], zs)
        out = [torch.where(hit, tab[j + 1], o) for tab, o in zip(tables, out)]
    out = [o.long() if o.dtype == torch.int32 else o for o in out]
    if not counts:
        return zs.abs(), out, None
    calibrated = zs.view(torch.int32 if zs.dtype == torch.float32 else torch.int64) < 0  # the sign bit
    n = torch.stack(
        [spiked.flatten(1).sum(1, dtype=torch.int32), calibrated.flatten(1).sum(1, dtype=torch.int32)], dim=1
    )
    return zs.abs(), out, n.long()


def avg_pool(z: torch.Tensor, kernel, stride, padding) -> torch.Tensor:
    """``F.avg_pool2d(z, kernel, stride, padding, count_include_pad=True)`` as straight-line
    tensor code, which ``torch.compile`` fuses into a layer's lookup (:func:`lookup_and_pool`):
    zero padding, the window's elements added in row-major order, the sum divided by the
    window's area. ATen's CPU kernel adds in that order and divides the same way, so the values
    are the same, bit for bit (tested for several kernels, strides and paddings, float32 and
    float64, eager and compiled). ``kernel``, ``stride``, ``padding``: ``(h, w)`` pairs;
    ``z``: ``(..., H, W)``."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        z = torch.nn.functional.pad(z, (pw, pw, ph, ph))
    ho = (z.shape[-2] - kh) // sh + 1
    wo = (z.shape[-1] - kw) // sw + 1
    total = None
    for i in range(kh):
        for j in range(kw):
            window = z[..., i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
            total = window if total is None else total + window
    return total / (kh * kw)


def lookup_and_pool(parts, bounds, signed, tables, counts: bool, pools=()):
    """:func:`select_lookup` and, of the decoded value ``z`` (shape ``(B, C, H, W)``), each
    average pooling in ``pools`` (``(kernel, stride, padding)``, as :func:`avg_pool`): what the
    layers fed by this one compute first, fused into the same call. Returns ``(z, looked up
    tables, counts or None, pooled)``."""
    z, out, n = select_lookup(parts, bounds, signed, tables, counts)
    return z, out, n, [avg_pool(z, *pool) for pool in pools]


_COMPILED_LOOKUP: dict = {}


def _lookup_function(pools: tuple):
    """A function calling :func:`lookup_and_pool` with ``pools`` written into its code as a
    literal: one new code object per variant, and ``torch.compile`` sees the pooling's kernel,
    stride and padding as constants (an argument or a closure would make them symbolic under
    ``dynamic=True``, and the pooling an index computation per element: x2.7 slower)."""
    source = (
        "def lookup_and_pool(parts, bounds, signed, tables, counts):\n"
        f"    return _lookup_and_pool(parts, bounds, signed, tables, counts, {tuple(pools)!r})\n"
    )
    namespace = {"_lookup_and_pool": lookup_and_pool}
    exec(compile(source, f"<lookup_and_pool {pools}>", "exec"), namespace)
    return namespace["lookup_and_pool"]


def compiled_lookup(key: Any = None, pools: tuple = ()):
    """:func:`lookup_and_pool` with these ``pools`` compiled by ``torch.compile`` (inductor): the
    bias add, the comparisons against every boundary, the selects of the tables, the spike
    counts and the pooled values in one call (one pass over the potentials, and one over the
    decoded values per pooling); same comparisons in the same dtype, so the same words, and the
    same pooled sums (tested). Called as ``(parts, bounds, signed, tables, counts)``. The first call for
    a new number of boundaries, dtype or set of outputs compiles (seconds, needs a C++
    compiler).

    ``key`` names one variant (the callers use dtype, padded number of boundaries, number of
    parts, outputs and ``pools``): each key gets its own code object, so that dynamo's
    recompilation limit (per code object) counts the recompilations of one variant only
    (shapes), not every code and dtype of a network or a test session."""
    if key not in _COMPILED_LOOKUP:
        _COMPILED_LOOKUP[key] = torch.compile(_lookup_function(tuple(pools)), dynamic=True)
    return _COMPILED_LOOKUP[key]


_COMPILED_STEPWISE: list = []


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
    if not compiled:
        (t_enc, t_cal, z), _ = word_lookup([v], fast["bounds"], (fast["t_enc_v"], fast["t_cal_v"], fast["z"]), False)
        return t_enc, t_cal, z
    key = (v.dtype, len(fast["bounds_c"]), 1, "encode")
    tables = (fast["t_enc_v_c"], fast["t_cal_v_c"])
    z, (t_enc, t_cal), _, _ = compiled_lookup(key)([v.reshape(-1)], fast["bounds_c"], fast["z_signed_c"], tables, False)
    return t_enc.reshape(v.shape), t_cal.reshape(v.shape), z.reshape(v.shape)


#: ``compiled="auto"``: a layer takes the compiled lookup when one call holds at least this many
#: potentials, counted over the whole network by the twin (``auto_size``): where compiling,
#: seconds once per variant, pays back. Counted per layer, the digits CNN at batch 128 (largest
#: layer 262,144 of 638,976 potentials) stayed eager and missed the ANN's time by x1.6-3.6.
AUTO_COMPILE_MIN = 1 << 19
#: ... and its code has at most this many boundaries (the compiled lookup unrolls one comparison
#: per boundary: long windows, e.g. SC-TTFS with T > 9, compile for minutes and stay eager)
AUTO_COMPILE_MAX_BOUNDS = 64

#: The twin fuses an average pooling into the layer before it (:func:`lookup_and_pool`) when its
#: window holds at most this many potentials (2x2 and 3x3 windows) and its output more than one
#: position per channel. A larger window (ResNet20's global 8x8 pooling) compiled for 10 s,
#: against 3 s for a variant without it, for no gain: it stays an eager ``F.avg_pool2d`` (the
#: same values).
FUSED_POOL_MAX_WINDOW = 9

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
    pools=(),
):
    """The twin's spiking layer: ``v = parts[0] + parts[1] + ...`` (bias first, then each
    input, batch first; they broadcast: the twin passes the bias in one sample's shape), then
    its decoded value ``z``, int64 spike times (when ``times``) and the spikes per sample
    (``(B, 2)`` int64, when ``counts``). ``compiled`` and ``method`` as
    for :func:`encode`; ``compiled="auto"``: the compiled lookup for layers of at least
    :data:`AUTO_COMPILE_MIN` potentials whose code has at most :data:`AUTO_COMPILE_MAX_BOUNDS`
    boundaries, where ``torch.compile`` works on the device (the first
    failure to compile there warns once and leaves the device on the eager lookup), else the
    eager one; all give the same results. Potentials of finite inputs and finite weights need
    no check, except that float overflow can make them non-finite: the eager lookup then runs
    the loop, the compiled one is exact there too. ``pools``: average poolings of ``z``
    (``(kernel, stride, padding)`` pairs, ``count_include_pad=True``) that the layers fed by this
    one apply first; compiled they are fused into the lookup (:func:`lookup_and_pool`), else
    ``F.avg_pool2d``: the same values. Returns ``(z, (t_enc, t_cal) or None, counts or None,
    pooled)``, ``pooled`` a tuple in the order of ``pools``. ``auto_size``: the potentials per
    call that ``compiled="auto"`` compares with :data:`AUTO_COMPILE_MIN` (default: this layer's;
    :class:`~.executor.GraphModule` passes its whole network's)."""
    v0 = parts[0]
    pools = tuple(pools)
    fast = lookup_tables(code, v0.dtype, v0.device) if _method(method) == "lookup" else None
    if compiled == "auto":
        compiled = False
        if fast is not None and _auto(v0, fast, auto_size):
            kind = v0.device.type
            try:
                out = _lookup_layer(fast, parts, True, times, counts, pools)
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
        return z, ((t_enc.long(), t_cal.long()) if times else None), n, _pool_eager(z, pools)
    return _lookup_layer(fast, parts, compiled, times, counts, pools)


def _pool_eager(z: torch.Tensor, pools: tuple) -> tuple:
    return tuple(torch.nn.functional.avg_pool2d(z, k, s, p, count_include_pad=True) for k, s, p in pools)


def _lookup_layer(fast: dict, parts, compiled: bool, times: bool, counts: bool, pools: tuple):
    if not compiled:
        names = ("z", "t_enc", "t_cal") if times else ("z",)
        tables = tuple(fast[k] for k in names) + ((fast["cal"],) if counts else ())
        out, n = word_lookup(list(parts), fast["bounds"], tables, counts)
        return out[0], (tuple(out[1:]) if times else None), n, _pool_eager(out[0], pools)
    tables = (fast["t_enc_c"], fast["t_cal_c"]) if times else ()
    key = (parts[0].dtype, len(fast["bounds_c"]), len(parts), times, counts, pools)
    z, out, n, pooled = compiled_lookup(key, pools)(list(parts), fast["bounds_c"], fast["z_signed_c"], tables, counts)
    return z, (tuple(out) if times else None), n, tuple(pooled)
