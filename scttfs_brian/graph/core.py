"""A framework-neutral description of a converted network (SPEC section 2).

The graph is data: layers of neurons, each with the linear projections that feed it, a bias and
a code. It knows shapes, connectivity and the pipelining of windows; it runs nothing (the torch
engine in :mod:`scttfs_brian.torch` and the Brian2 builder in :mod:`scttfs_brian.brian` read it).

* A **projection** is a chain of linear operations (:mod:`.ops`) applied to a source's decoded
  values.
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

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..coding import SCTTFSCode, TTFSCode
from .ops import AvgPool2d, Conv2d, ConvSpec, Dense, Flatten, _finite, op_matrix

__all__ = ["INPUT", "Projection", "Layer", "Graph"]

#: Name of the network's input in projections.
INPUT = "input"


@dataclass(eq=False)
class Projection:
    """Linear map from a source (a layer name or ``"input"``) into a layer: ``ops`` in order."""

    source: str
    ops: tuple = ()
    #: whole windows its spikes wait; the :class:`Graph` that holds the projection sets it from
    #: the windows of source and target (a value given here is replaced)
    delay_windows: int = 0

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
            M = op_matrix(op, shape) @ M
            shape = op.out_shape(shape)
        M.sum_duplicates()
        return M.tocsr()

    def as_conv(self, in_shape) -> ConvSpec | None:
        """This projection as one :class:`~.ops.ConvSpec`, or ``None`` when it is not one.

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
                len(shape) != 3
                or pool.kernel != pool.stride
                or pool.padding != (0, 0)
                or shape[1] % pool.kernel[0]
                or shape[2] % pool.kernel[1]
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
        b = _finite(f"bias of layer '{self.name}'", self.bias)
        b = np.broadcast_to(b, (n,)) if b.ndim == 0 else b.reshape(-1)
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
    """A converted network: input shape, optional input code, layers in topological order.

    Building a graph checks it (:meth:`validate`) and then places its layers in windows: it holds
    its own copies of the layers' projections, with ``delay_windows`` set (the layers and
    projections passed in are not modified), and :attr:`windows` gives each population's
    encoding window (the output's: the window in which it integrates).
    """

    input_shape: tuple
    layers: list
    input_code: Any = None
    #: ``{population: window}``, ``"input"`` included (``-1`` when the input is analog)
    windows: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.validate()
        self.windows, delays = _schedule(self.layers, self.input_code is not None)
        self.layers = [_placed(layer, delays[layer.name]) for layer in self.layers]

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
                    raise ValueError(
                        f"neuron indices for {name!r} must lie in [0, {size - 1}] (flat, C order)"
                    )
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
        """Check the graph (names, codes, one window length, topological order, shapes); raise
        ``ValueError`` / ``TypeError`` saying what is wrong. A pure check: it changes nothing."""
        if not self.layers:
            raise ValueError("a graph needs at least one layer")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names) or INPUT in names:
            raise ValueError(f"layer names must be unique and not {INPUT!r} (got {names})")
        if self.layers[-1].spiking or any(not l.spiking for l in self.layers[:-1]):
            raise ValueError(
                "every layer but the last must have a code; the last (output) layer must have none"
            )
        if self.input_code is not None and not isinstance(self.input_code, (SCTTFSCode, TTFSCode)):
            raise TypeError("input_code must be an SCTTFSCode, a TTFSCode or None")
        Ts = {name: c.T for name, c in self.codes().items()}
        if len(set(Ts.values())) > 1:
            raise ValueError(f"all spiking layers must share one window length T for pipelining (got {Ts})")
        earlier = {INPUT}
        for layer in self.layers:
            self._check_inputs(layer, earlier)
            earlier.add(layer.name)

    def _check_inputs(self, layer: Layer, earlier: set) -> None:
        if not layer.inputs:
            raise ValueError(f"layer '{layer.name}' has no inputs")
        for proj in layer.inputs:
            if proj.source not in earlier:
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

    # -- persistence -------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the graph to one ``.npz`` file (see :func:`~.io.save_graph`; no pickle)."""
        from .io import save_graph

        save_graph(self, path)

    @classmethod
    def load(cls, path) -> Graph:
        """Read a graph written by :meth:`save` (see :func:`~.io.load_graph`)."""
        from .io import load_graph

        return load_graph(path)

    def with_codes(self, codes: dict) -> Graph:
        """A copy sharing the weights, with the codes of the named populations replaced
        (``"input"`` names the input code)."""
        layers = [
            Layer(
                l.name,
                l.shape,
                [Projection(p.source, p.ops) for p in l.inputs],
                l.bias,
                codes.get(l.name, l.code),
            )
            for l in self.layers
        ]
        return Graph(self.input_shape, layers, input_code=codes.get(INPUT, self.input_code))

    def summary(self) -> str:
        analog = f" encoded by {self.input_code}" if self.input_code else " (analog)"
        lines = [f"input {self.input_shape}{analog}"]
        for l in self.layers:
            srcs = ", ".join(
                f"{p.source}" + (f" (+{p.delay_windows} windows)" if p.delay_windows else "")
                for p in l.inputs
            )
            kind = repr(l.code) if l.code is not None else "output (integrates)"
            lines.append(
                f"{l.name:>12} {str(l.shape):>14} window {self.windows[l.name]:>2}  <- {srcs}  {kind}"
            )
        lines.append(f"latency {self.latency_steps} steps ({self.n_windows} windows of T={self.T})")
        return "\n".join(lines)


def _schedule(layers: list, input_spikes: bool) -> tuple[dict, dict]:
    """Windows of a checked graph's populations and the delay (in windows) of each projection.

    A layer decodes while its latest source encodes; a spiking layer encodes in the window after
    it, the output integrates in it. A projection from an earlier source waits the difference.
    Returns ``({population: window}, {layer: [delay of each projection]})``.
    """
    windows = {INPUT: 0 if input_spikes else -1}
    delays = {}
    for layer in layers:
        last = max(windows[p.source] for p in layer.inputs)
        delays[layer.name] = [last - windows[p.source] for p in layer.inputs]
        windows[layer.name] = last + 1 if layer.spiking else last
    return windows, delays


def _placed(layer: Layer, delays: list) -> Layer:
    """A shallow copy of ``layer`` whose projections are copies carrying their delays."""
    out = copy.copy(layer)
    out.inputs = [dataclasses.replace(p, delay_windows=d) for p, d in zip(layer.inputs, delays)]
    return out
