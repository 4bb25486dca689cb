"""Linear operations of a projection and their connectivity (SPEC section 2).

A projection is a chain of these, applied to a source's decoded values: :class:`Conv2d`,
:class:`Dense`, :class:`AvgPool2d` (average pooling is linear, so it is folded into the
connectivity of the next weight layer: no extra window, exact) and :class:`Flatten`.

Each operation knows its output shape and its synapses as flat index arrays ``(post, pre, widx)``:
``out[post] += parameters().flat[widx] * in[pre]`` for every entry is the operation
(:func:`op_matrix` makes that a sparse matrix). :class:`ConvSpec` is a whole projection seen as one
convolution, which the Brian2 builder turns into generated connectivity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Dense",
    "Conv2d",
    "AvgPool2d",
    "Flatten",
    "Op",
    "ConvSpec",
    "conv2d_connectivity",
    "avg_pool2d_connectivity",
    "op_matrix",
]


def _pair(x: Any, name: str, minimum: int | None = None) -> tuple[int, int]:
    """``x`` as a pair of ints; with ``minimum``, each must be ``>= minimum``."""
    if isinstance(x, (int, np.integer)):
        x = (int(x), int(x))
    x = tuple(int(v) for v in x)
    if len(x) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints (got {x})")
    if minimum is not None and min(x) < minimum:
        raise ValueError(f"{name} must be >= {minimum} (got {x})")
    return x


def _finite(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf); check the trained weights")
    return arr


def _window_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a sliding window (no ceil mode), as torch computes it."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True, eq=False)
class Dense:
    """Fully connected map, ``weight`` of shape ``(out_features, in_features)``."""

    weight: np.ndarray

    def __post_init__(self) -> None:
        w = _finite("Dense weight", self.weight)
        if w.ndim != 2:
            raise ValueError(f"Dense weight must be 2-D (out, in) (got shape {w.shape})")
        object.__setattr__(self, "weight", w)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        n = int(np.prod(in_shape))
        if len(in_shape) != 1 or n != self.weight.shape[1]:
            raise ValueError(
                f"Dense expects a flat input of {self.weight.shape[1]} features (got shape {in_shape}); "
                "add a Flatten before it"
            )
        return (self.weight.shape[0],)

    def connectivity(self, in_shape):
        n_out, n_in = self.weight.shape
        post, pre = np.divmod(np.arange(n_out * n_in, dtype=np.int64), n_in)
        return post, pre, np.arange(n_out * n_in, dtype=np.int64)

    def parameters(self) -> np.ndarray:
        return self.weight


@dataclass(frozen=True, eq=False)
class Conv2d:
    """2-D convolution (cross-correlation, as torch), ``weight`` ``(out_ch, in_ch, kh, kw)``;
    ``stride >= 1``, ``padding >= 0`` (zeros)."""

    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        w = _finite("Conv2d weight", self.weight)
        if w.ndim != 4:
            raise ValueError(f"Conv2d weight must be 4-D (out, in, kh, kw) (got shape {w.shape})")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "Conv2d padding", 0))

    def out_shape(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.weight.shape[1]:
            raise ValueError(f"Conv2d expects input (C={self.weight.shape[1]}, H, W) (got shape {in_shape})")
        _, H, W = in_shape
        kh, kw = self.weight.shape[2:]
        Ho = _window_out(H, kh, self.stride[0], self.padding[0])
        Wo = _window_out(W, kw, self.stride[1], self.padding[1])
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"Conv2d kernel {kh}x{kw} does not fit input {H}x{W} with padding {self.padding}"
            )
        return (self.weight.shape[0], Ho, Wo)

    def connectivity(self, in_shape):
        return conv2d_connectivity(in_shape, self.weight.shape, self.stride, self.padding)

    def parameters(self) -> np.ndarray:
        return self.weight


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """Average pooling (``count_include_pad=True``: padded zeros count in the mean, as torch's
    default); a linear map, folded into the next weight layer's connectivity. ``kernel`` and
    ``stride`` (default: the kernel) ``>= 1``, ``padding >= 0``."""

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "AvgPool2d kernel", 1))
        stride = self.stride if self.stride is not None else self.kernel
        object.__setattr__(self, "stride", _pair(stride, "AvgPool2d stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "AvgPool2d padding", 0))

    def out_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"AvgPool2d expects input (C, H, W) (got shape {in_shape})")
        C, H, W = in_shape
        Ho = _window_out(H, self.kernel[0], self.stride[0], self.padding[0])
        Wo = _window_out(W, self.kernel[1], self.stride[1], self.padding[1])
        if Ho < 1 or Wo < 1:
            raise ValueError(f"AvgPool2d kernel {self.kernel} does not fit input {H}x{W}")
        return (C, Ho, Wo)

    def connectivity(self, in_shape):
        return avg_pool2d_connectivity(in_shape, self.kernel, self.stride, self.padding)

    def parameters(self) -> np.ndarray:
        return np.array([1.0 / (self.kernel[0] * self.kernel[1])])


@dataclass(frozen=True, eq=False)
class Flatten:
    """Flatten ``(C, H, W)`` to ``(C*H*W,)`` in C order (torch's ``flatten(1)``)."""

    def out_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def connectivity(self, in_shape):
        n = int(np.prod(in_shape))
        idx = np.arange(n, dtype=np.int64)
        return idx, idx, np.zeros(n, dtype=np.int64)

    def parameters(self) -> np.ndarray:
        return np.array([1.0])


Op = Dense | Conv2d | AvgPool2d | Flatten


def conv2d_connectivity(in_shape, weight_shape, stride=(1, 1), padding=(0, 0)):
    """Synapses of a convolution as flat index arrays ``(post, pre, widx)``, vectorized.

    ``post`` indexes the output ``(O, Ho, Wo)`` in C order, ``pre`` the input ``(C, H, W)``,
    ``widx`` the weight tensor ``(O, C, kh, kw)`` flattened: ``out[post] += w.flat[widx] *
    in[pre]`` for every entry is the convolution. Taps that fall into the zero padding are
    dropped.
    """
    C, H, W = in_shape
    O, Cw, kh, kw = weight_shape
    if C != Cw:
        raise ValueError(f"conv weight expects {Cw} input channels (got input shape {in_shape})")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    Ho = _window_out(H, kh, sh, ph)
    Wo = _window_out(W, kw, sw, pw)
    # input row/col read by output position y (x) and kernel row ky (kx)
    rows = np.arange(Ho)[:, None] * sh - ph + np.arange(kh)[None, :]  # (Ho, kh)
    cols = np.arange(Wo)[:, None] * sw - pw + np.arange(kw)[None, :]  # (Wo, kw)
    y, ky, x, kx = np.nonzero(
        ((rows >= 0) & (rows < H))[:, :, None, None] & ((cols >= 0) & (cols < W))[None, None, :, :]
    )
    # valid (y, ky, x, kx) taps, shared by every (out channel, in channel) pair
    in_pos = rows[y, ky] * W + cols[x, kx]
    out_pos = y * Wo + x
    k_pos = ky * kw + kx
    o = np.arange(O, dtype=np.int64)[:, None, None]
    c = np.arange(C, dtype=np.int64)[None, :, None]
    post = (o * (Ho * Wo) + out_pos[None, None, :]) + 0 * c
    pre = (c * (H * W) + in_pos[None, None, :]) + 0 * o
    widx = (o * C + c) * (kh * kw) + k_pos[None, None, :]
    return post.reshape(-1), pre.reshape(-1), widx.reshape(-1)


def avg_pool2d_connectivity(in_shape, kernel, stride=None, padding=(0, 0)):
    """Average pooling as ``(post, pre, widx)`` with one weight ``1/(kh*kw)`` (``widx`` all 0)."""
    C, H, W = in_shape
    kh, kw = _pair(kernel, "kernel", 1)
    sh, sw = _pair(stride if stride is not None else kernel, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    post1, pre1, _ = conv2d_connectivity((1, H, W), (1, 1, kh, kw), (sh, sw), (ph, pw))
    Ho = _window_out(H, kh, sh, ph)
    Wo = _window_out(W, kw, sw, pw)
    ch = np.arange(C, dtype=np.int64)[:, None]
    post = (ch * (Ho * Wo) + post1[None, :]).reshape(-1)
    pre = (ch * (H * W) + pre1[None, :]).reshape(-1)
    return post, pre, np.zeros(post.size, dtype=np.int64)


def op_matrix(op: Op, in_shape) -> sp.csr_matrix:
    """One operation as a sparse matrix ``(n_out, n_in)`` over the flattened (C order) shapes."""
    post, pre, widx = op.connectivity(in_shape)
    n_out = int(np.prod(op.out_shape(in_shape)))
    n_in = int(np.prod(in_shape))
    vals = op.parameters().reshape(-1)[widx]
    return sp.csr_matrix((vals, (post, pre)), shape=(n_out, n_in))


@dataclass(frozen=True, eq=False)
class ConvSpec:
    """A projection that is one convolution over its source, average pooling folded in.

    ``kernel`` has shape ``(O, C, kh, kw)``; the projection maps the source ``in_shape`` =
    ``(C, H, W)`` (a flat source of ``n`` features reads as ``(n, 1, 1)``) to ``out_shape`` =
    ``(O, Ho, Wo)``, both flattened in C order: ``out[o, y, x] += kernel[o, c, ky, kx] *
    in[c, y*sh - ph + ky, x*sw - pw + kx]`` for every tap inside the source. A dense layer is the
    kernel that covers its whole (flattened) input. :meth:`Projection.as_conv` builds it; the
    Brian2 builder turns it into connectivity generated by Brian2's code (no index arrays).
    """

    kernel: np.ndarray
    stride: tuple
    padding: tuple
    in_shape: tuple
    out_shape: tuple

    def taps(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output row (column), the number of kernel rows (columns) inside the source."""
        (_, H, W), (_, Ho, Wo) = self.in_shape, self.out_shape
        kh, kw = self.kernel.shape[2:]
        rows = np.arange(Ho)[:, None] * self.stride[0] - self.padding[0] + np.arange(kh)[None, :]
        cols = np.arange(Wo)[:, None] * self.stride[1] - self.padding[1] + np.arange(kw)[None, :]
        return ((rows >= 0) & (rows < H)).sum(1), ((cols >= 0) & (cols < W)).sum(1)

    @property
    def n_synapses(self) -> int:
        """Synapses of the projection: every (out channel, in channel, tap inside the source)."""
        ty, tx = self.taps()
        return int(self.kernel.shape[0] * self.kernel.shape[1] * ty.sum() * tx.sum())
