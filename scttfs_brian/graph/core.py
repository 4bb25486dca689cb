"""A framework-neutral description of a converted network (SPEC section 2).

The graph is data: layers of neurons, each with the linear projections that feed it, a bias and
a code. It knows shapes, connectivity and the pipelining of windows; it runs nothing (the torch
twin in :mod:`.functional` and the Brian2 builder in :mod:`.brian` read it).

* A **projection** is a chain of linear operations applied to a source's decoded values:
  :class:`Conv2d`, :class:`Dense`, :class:`AvgPool2d` (average pooling is linear, so it is folded
  into the connectivity of the next weight layer: no extra window, exact) and :class:`Flatten`.
* A **layer** sums its projections and its bias (BatchNorm already folded in, eq. 24). A layer
  with a code is a spiking layer (the ReLU of the ANN becomes the code's quantizer); the last
  layer has no code: it only integrates, and the prediction is its argmax.
* The source ``"input"`` is the image. By default it is analog (the first layer's potential
  starts at ``W x + b``); with ``input_code`` set, the pixels are encoded by a spiking input layer.

Windows: the input layer (if spiking) encodes in window 0; a spiking layer encodes in the window
after the latest of its sources, so it decodes while they encode. A projection from an earlier
source (a residual shortcut) is delayed by whole windows so that its spikes arrive in the same
window as the main branch's (``Projection.delay_windows``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode

__all__ = [
    "Dense",
    "Conv2d",
    "AvgPool2d",
    "Flatten",
    "Projection",
    "ConvSpec",
    "Layer",
    "Graph",
    "INPUT",
    "conv2d_connectivity",
    "avg_pool2d_connectivity",
]

#: Name of the network's input in projections.
INPUT = "input"


def _pair(x: Any, name: str) -> tuple[int, int]:
    if isinstance(x, (int, np.integer)):
        x = (int(x), int(x))
    x = tuple(int(v) for v in x)
    if len(x) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints (got {x})")
    return x


def _finite(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf); check the trained weights")
    return arr


# --------------------------------------------------------------------------------------------
# Linear operations
# --------------------------------------------------------------------------------------------
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
    """2-D convolution (cross-correlation, as torch), ``weight`` ``(out_ch, in_ch, kh, kw)``."""

    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        w = _finite("Conv2d weight", self.weight)
        if w.ndim != 4:
            raise ValueError(f"Conv2d weight must be 4-D (out, in, kh, kw) (got shape {w.shape})")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "padding"))

    def out_shape(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.weight.shape[1]:
            raise ValueError(f"Conv2d expects input (C={self.weight.shape[1]}, H, W) (got shape {in_shape})")
        _, H, W = in_shape
        kh, kw = self.weight.shape[2:]
        Ho = (H + 2 * self.padding[0] - kh) // self.stride[0] + 1
        Wo = (W + 2 * self.padding[1] - kw) // self.stride[1] + 1
        if Ho < 1 or Wo < 1:
            raise ValueError(f"Conv2d kernel {kh}x{kw} does not fit input {H}x{W} with padding {self.padding}")
        return (self.weight.shape[0], Ho, Wo)

    def connectivity(self, in_shape):
        return conv2d_connectivity(in_shape, self.weight.shape, self.stride, self.padding)

    def parameters(self) -> np.ndarray:
        return self.weight


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """Average pooling (``count_include_pad=True``: padded zeros count in the mean, as torch's
    default); a linear map, folded into the next weight layer's connectivity."""

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "kernel"))
        object.__setattr__(self, "stride", _pair(self.stride if self.stride is not None else self.kernel, "stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "padding"))

    def out_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"AvgPool2d expects input (C, H, W) (got shape {in_shape})")
        C, H, W = in_shape
        Ho = (H + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        Wo = (W + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
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
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
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
    kh, kw = _pair(kernel, "kernel")
    post1, pre1, _ = conv2d_connectivity((1, H, W), (1, 1, kh, kw), stride if stride is not None else kernel, padding)
    Ho = (H + 2 * _pair(padding, "padding")[0] - kh) // _pair(stride or kernel, "stride")[0] + 1
    Wo = (W + 2 * _pair(padding, "padding")[1] - kw) // _pair(stride or kernel, "stride")[1] + 1
    ch = np.arange(C, dtype=np.int64)[:, None]
    post = (ch * (Ho * Wo) + post1[None, :]).reshape(-1)
    pre = (ch * (H * W) + pre1[None, :]).reshape(-1)
    return post, pre, np.zeros(post.size, dtype=np.int64)


def _op_matrix(op: Op, in_shape) -> sp.csr_matrix:
    post, pre, widx = op.connectivity(in_shape)
    n_out = int(np.prod(op.out_shape(in_shape)))
    n_in = int(np.prod(in_shape))
    vals = op.parameters().reshape(-1)[widx]
    return sp.csr_matrix((vals, (post, pre)), shape=(n_out, n_in))


# --------------------------------------------------------------------------------------------
# Projections, layers, graph
# --------------------------------------------------------------------------------------------
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


@dataclass(eq=False)
class Projection:
    """Linear map from a source (a layer name or ``"input"``) into a layer: ``ops`` in order."""

    source: str
    ops: tuple = ()
    delay_windows: int = 0  #: set by :meth:`Graph.validate` from the windows of source and target

    def out_shape(self, in_shape):
        shape = tuple(in_shape)
        for op in self.ops:
            shape = op.out_shape(shape)
        return shape

    def matrix(self, in_shape) -> sp.csr_matrix:
        """The whole projection as one sparse matrix ``(n_out, n_in)``: pooling folded in."""
        shape = tuple(in_shape)
        M = sp.identity(int(np.prod(shape)), format="csr")
        for op in self.ops:
            M = _op_matrix(op, shape) @ M
            shape = op.out_shape(shape)
        M.sum_duplicates()
        return M.tocsr()

    def as_conv(self, in_shape) -> ConvSpec | None:
        """This projection as one :class:`ConvSpec`, or ``None`` when it is not one.

        Recognized: ``Conv2d``; ``Dense`` on a flat source; ``Flatten, Dense``; each optionally
        after one ``AvgPool2d`` whose kernel equals its stride, without padding, that tiles the
        source exactly (the pooling is then a kernel ``s`` times larger with ``s`` times the
        stride and padding, each weight times ``1 / (kh * kw)``, as in :meth:`matrix`).
        """
        ops, shape = list(self.ops), tuple(int(s) for s in in_shape)
        pool = None
        if ops and isinstance(ops[0], AvgPool2d):
            pool = ops.pop(0)
            if (
                len(shape) != 3 or pool.kernel != pool.stride or pool.padding != (0, 0)
                or shape[1] % pool.kernel[0] or shape[2] % pool.kernel[1]
            ):
                return None
            pooled = pool.out_shape(shape)
        else:
            pooled = shape
        if len(ops) == 1 and isinstance(ops[0], Conv2d) and len(pooled) == 3:
            kernel, stride, padding = ops[0].weight, ops[0].stride, ops[0].padding
        elif len(ops) == 1 and isinstance(ops[0], Dense) and len(pooled) == 1 and pool is None:
            kernel, stride, padding = ops[0].weight[:, :, None, None], (1, 1), (0, 0)
            shape = (shape[0], 1, 1)
        elif len(ops) == 2 and isinstance(ops[0], Flatten) and isinstance(ops[1], Dense) and len(pooled) == 3:
            w = ops[1].weight
            if w.shape[1] != int(np.prod(pooled)):
                return None
            kernel, stride, padding = w.reshape((w.shape[0],) + pooled), (1, 1), (0, 0)
        else:
            return None
        if pool is not None:
            (sh, sw), scale = pool.kernel, pool.parameters()[0]
            kernel = np.repeat(np.repeat(kernel, sh, axis=2), sw, axis=3) * scale
            stride = (stride[0] * sh, stride[1] * sw)
            padding = (padding[0] * sh, padding[1] * sw)
        kernel = np.ascontiguousarray(kernel, dtype=np.float64)
        O, _, kh, kw = kernel.shape
        Ho = (shape[1] + 2 * padding[0] - kh) // stride[0] + 1
        Wo = (shape[2] + 2 * padding[1] - kw) // stride[1] + 1
        out = (O, Ho, Wo)
        if int(np.prod(out)) != int(np.prod(self.out_shape(in_shape))):  # pragma: no cover - guard
            return None
        return ConvSpec(kernel, tuple(stride), tuple(padding), shape, out)

    def n_synapses(self, in_shape) -> int:
        """Synapses this projection needs: the taps of :meth:`as_conv` when it is a convolution
        (zero weights included), else the entries of :meth:`matrix`."""
        spec = self.as_conv(in_shape)
        return spec.n_synapses if spec is not None else int(self.matrix(in_shape).nnz)

    def apply(self, x: np.ndarray, in_shape) -> np.ndarray:
        """Apply to a batch ``x`` of shape ``(B, *in_shape)`` in float64 (numpy reference)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        out = (self.matrix(in_shape) @ x.T).T
        return out.reshape((len(x),) + self.out_shape(in_shape))


@dataclass(eq=False)
class Layer:
    """A population of neurons: the sum of its projections plus ``bias``, then its ``code``
    (``None`` for the output layer, which only integrates)."""

    name: str
    shape: tuple
    inputs: list
    bias: np.ndarray
    code: Any = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        n = int(np.prod(self.shape))
        b = np.broadcast_to(_finite(f"bias of layer '{self.name}'", self.bias), (n,)) if np.ndim(self.bias) == 0 else _finite(f"bias of layer '{self.name}'", self.bias)
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if b.size != n:
            raise ValueError(f"bias of layer '{self.name}' has {b.size} values for {n} neurons")
        self.bias = b.copy()
        if self.code is not None and not isinstance(self.code, (SCTTFSCode, TTFSCode)):
            raise TypeError(f"code of layer '{self.name}' must be an SCTTFSCode, a TTFSCode or None")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def spiking(self) -> bool:
        return self.code is not None


@dataclass(eq=False)
class Graph:
    """A converted network: input shape, optional input code, layers in topological order."""

    input_shape: tuple
    layers: list
    input_code: Any = None
    windows: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.validate()

    # -- structure -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers are {[l.name for l in self.layers]}")

    @property
    def spiking_layers(self) -> list:
        return [l for l in self.layers if l.spiking]

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def T(self) -> int:
        codes = self.codes()
        return next(iter(codes.values())).T

    def codes(self) -> dict:
        """Code of every spiking population, the input's (if any) under ``"input"``."""
        out = {INPUT: self.input_code} if self.input_code is not None else {}
        out.update({l.name: l.code for l in self.spiking_layers})
        return out

    def recording(self, record: Any) -> dict:
        """``{population: flat neuron indices or None (all)}`` from a user's ``record=``:
        ``True``/``"all"``, a name, names, or ``{name: neuron indices}``; both executors use it."""
        names = set(self.codes())
        if record is True or record == "all":
            return dict.fromkeys(names)
        if not record:
            return {}
        if isinstance(record, str):
            record = [record]
        record = dict(record) if isinstance(record, dict) else dict.fromkeys(record)
        unknown = set(record) - names
        if unknown:
            raise ValueError(f"cannot record {sorted(unknown)}: the spiking populations are {sorted(names)}")
        for name, idx in record.items():
            if idx is not None:
                idx = np.asarray(idx, dtype=np.int64).reshape(-1)
                size = int(np.prod(self.shape_of(name)))
                if idx.size and (idx.min() < 0 or idx.max() >= size):
                    raise ValueError(f"neuron indices for {name!r} must lie in [0, {size - 1}] (flat, C order)")
                record[name] = idx
        return record

    def shape_of(self, name: str) -> tuple:
        return self.input_shape if name == INPUT else self[name].shape

    @property
    def n_windows(self) -> int:
        """Number of encoding windows (input layer included when it spikes)."""
        return max(self.windows.values()) + 1

    @property
    def latency_steps(self) -> int:
        """Latency in time steps: (number of encoding windows) x T (SPEC section 2)."""
        return self.n_windows * self.T

    def validate(self) -> None:
        if not self.layers:
            raise ValueError("a graph needs at least one layer")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names) or INPUT in names:
            raise ValueError(f"layer names must be unique and not {INPUT!r} (got {names})")
        if self.layers[-1].spiking or any(not l.spiking for l in self.layers[:-1]):
            raise ValueError("every layer but the last must have a code; the last (output) layer must have none")
        if self.input_code is not None and not isinstance(self.input_code, (SCTTFSCode, TTFSCode)):
            raise TypeError("input_code must be an SCTTFSCode, a TTFSCode or None")
        Ts = {name: c.T for name, c in self.codes().items()}
        if len(set(Ts.values())) > 1:
            raise ValueError(f"all spiking layers must share one window length T for pipelining (got {Ts})")
        windows = {INPUT: 0 if self.input_code is not None else -1}
        for layer in self.layers:
            if not layer.inputs:
                raise ValueError(f"layer '{layer.name}' has no inputs")
            for proj in layer.inputs:
                if proj.source not in windows:
                    raise ValueError(
                        f"layer '{layer.name}' reads '{proj.source}', which is not an earlier layer; "
                        "layers must be listed in topological order"
                    )
                shape = proj.out_shape(self.shape_of(proj.source))
                if shape != layer.shape:
                    raise ValueError(
                        f"projection from '{proj.source}' into '{layer.name}' gives shape {shape}, "
                        f"the layer has shape {layer.shape}"
                    )
            if self.input_code is None and any(p.source == INPUT for p in layer.inputs) and len(layer.inputs) > 1:
                raise ValueError(
                    f"layer '{layer.name}' mixes the analog input with other sources; "
                    "encode the input (input_code=...) to combine it with spikes"
                )
            last = max(windows[p.source] for p in layer.inputs)
            for proj in layer.inputs:
                proj.delay_windows = last - windows[proj.source]
            # a layer encodes in the window after its latest source; the output integrates then
            windows[layer.name] = last + 1 if layer.spiking else last
        self.windows = windows

    # -- persistence -------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the graph to one ``.npz`` file (arrays plus a JSON description; no pickle)."""
        arrays: dict[str, np.ndarray] = {}

        def code_dict(code):
            if code is None:
                return None
            kern = lambda k: [k.alpha, k.beta, k.k]  # noqa: E731
            if isinstance(code, SCTTFSCode):
                return {"kind": "sc-ttfs", "T": code.T, "encode": kern(code.encode), "calibrate": kern(code.calibrate)}
            return {"kind": "ttfs", "T": code.T, "encode": kern(code.encode)}

        layers = []
        for li, layer in enumerate(self.layers):
            arrays[f"l{li}_bias"] = layer.bias
            projs = []
            for pi, proj in enumerate(layer.inputs):
                ops = []
                for oi, op in enumerate(proj.ops):
                    key = f"l{li}_p{pi}_o{oi}"
                    if isinstance(op, Dense):
                        arrays[key] = op.weight
                        ops.append({"op": "dense", "weight": key})
                    elif isinstance(op, Conv2d):
                        arrays[key] = op.weight
                        ops.append({"op": "conv2d", "weight": key, "stride": op.stride, "padding": op.padding})
                    elif isinstance(op, AvgPool2d):
                        ops.append({"op": "avgpool2d", "kernel": op.kernel, "stride": op.stride, "padding": op.padding})
                    else:
                        ops.append({"op": "flatten"})
                projs.append({"source": proj.source, "ops": ops})
            layers.append({"name": layer.name, "shape": layer.shape, "inputs": projs, "code": code_dict(layer.code)})
        meta = {"format": "scttfs-graph/1", "input_shape": self.input_shape,
                "input_code": code_dict(self.input_code), "layers": layers}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> Graph:
        """Read a graph written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(f["meta"].tobytes().decode())
            if meta.get("format") != "scttfs-graph/1":
                raise ValueError(f"{path} is not a saved scttfs graph (format {meta.get('format')!r})")

            def code_of(d):
                if d is None:
                    return None
                if d["kind"] == "sc-ttfs":
                    return SCTTFSCode(d["T"], ThresholdKernel(*d["encode"]), ThresholdKernel(*d["calibrate"]))
                return TTFSCode(d["T"], ThresholdKernel(*d["encode"]))

            layers = []
            for li, ld in enumerate(meta["layers"]):
                projs = []
                for pd in ld["inputs"]:
                    ops = []
                    for od in pd["ops"]:
                        kind = od["op"]
                        if kind == "dense":
                            ops.append(Dense(f[od["weight"]]))
                        elif kind == "conv2d":
                            ops.append(Conv2d(f[od["weight"]], od["stride"], od["padding"]))
                        elif kind == "avgpool2d":
                            ops.append(AvgPool2d(od["kernel"], od["stride"], od["padding"]))
                        else:
                            ops.append(Flatten())
                    projs.append(Projection(pd["source"], tuple(ops)))
                layers.append(Layer(ld["name"], tuple(ld["shape"]), projs, f[f"l{li}_bias"], code_of(ld["code"])))
        return cls(tuple(meta["input_shape"]), layers, input_code=code_of(meta["input_code"]))

    def with_codes(self, codes: dict) -> Graph:
        """A copy sharing the weights, with the codes of the named populations replaced
        (``"input"`` names the input code)."""
        layers = [
            Layer(l.name, l.shape, [Projection(p.source, p.ops) for p in l.inputs], l.bias, codes.get(l.name, l.code))
            for l in self.layers
        ]
        return Graph(self.input_shape, layers, input_code=codes.get(INPUT, self.input_code))

    def summary(self) -> str:
        lines = [f"input {self.input_shape}" + (f" encoded by {self.input_code}" if self.input_code else " (analog)")]
        for l in self.layers:
            srcs = ", ".join(
                f"{p.source}" + (f" (+{p.delay_windows} windows)" if p.delay_windows else "") for p in l.inputs
            )
            kind = repr(l.code) if l.code is not None else "output (integrates)"
            lines.append(f"{l.name:>12} {str(l.shape):>14} window {self.windows[l.name]:>2}  <- {srcs}  {kind}")
        lines.append(f"latency {self.latency_steps} steps ({self.n_windows} windows of T={self.T})")
        return "\n".join(lines)
