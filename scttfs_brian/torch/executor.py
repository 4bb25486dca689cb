r"""The torch engine's graph executor: the "pre-conversion SNN" of section 3.4 on a graph.

Each ReLU of the ANN is replaced by its layer's code (:mod:`scttfs_brian.coding`): a spiking
layer's value is ``z = theta_e(t_enc) + theta_c(t_cal)`` with the spike times of the stepwise
rule, computed on the whole batch at once (any device, float32 or float64) through the codebook
lookup of :mod:`.lookup`. In float64 it gives, neuron for neuron, the spike times of the Brian2
network built from the same graph.

One executor, two modes of activation:

* :class:`GraphModule` / :func:`run`: the codes (fixed kernels); they return a
  :class:`FunctionalOutput`, the raw tensors of the torch side (output potentials, spike times,
  decoded values and counts as tensors on the run's device, no copies), which fine-tuning and
  the ``nn.Module`` world use directly; :func:`simulate` turns that into the
  backend-independent :class:`~scttfs_brian.results.SimulationResult` (numpy arrays), the type
  both engines return;
* :func:`relu_forward`: a plain ReLU in place of every code (what the ANN computes), which the
  converter uses to check a conversion.

Both go through the same layer loop and :func:`apply_op`, the one place where a graph operation
becomes torch ops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..graph import INPUT, AvgPool2d, Conv2d, Dense, Flatten, Graph
from ..results import SimulationResult
from . import lookup
from .lookup import METHODS, encode_layer

__all__ = ["GraphModule", "FunctionalOutput", "run", "simulate", "apply_op", "relu_forward"]


def apply_op(op, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """One graph operation (:mod:`scttfs_brian.graph` ops) on a batch ``x`` (batch first).

    ``Conv2d`` and ``Dense`` take ``weight`` (a tensor of ``x``'s dtype and device, e.g. a
    :class:`GraphModule` buffer) or, by default, ``op.weight`` converted to ``x``'s dtype and
    device; ``AvgPool2d`` counts the padding (as ``nn.AvgPool2d`` by default); ``Flatten`` keeps
    the batch dimension. The one place where a graph operation becomes torch ops: the twin
    (:class:`GraphModule`), :func:`relu_forward` and the converter's bias propagation use it.
    """
    if isinstance(op, (Conv2d, Dense)) and weight is None:
        weight = torch.from_numpy(op.weight).to(device=x.device, dtype=x.dtype)
    if isinstance(op, Conv2d):
        return F.conv2d(x, weight, stride=op.stride, padding=op.padding)
    if isinstance(op, Dense):
        return F.linear(x, weight)
    if isinstance(op, AvgPool2d):
        return F.avg_pool2d(x, op.kernel, op.stride, op.padding, count_include_pad=True)
    if isinstance(op, Flatten):
        return x.reshape(len(x), -1)
    raise TypeError(f"unknown graph operation {type(op).__name__}")


def _first_pool(proj) -> tuple | None:
    """``(kernel, stride, padding)`` of the average pooling a projection starts with, or None."""
    if proj.ops and isinstance(proj.ops[0], AvgPool2d):
        op = proj.ops[0]
        return op.kernel, op.stride, op.padding
    return None


def _pools(graph: Graph) -> dict:
    """``{population: ((kernel, stride, padding), ...)}``: the distinct average poolings that
    projections from a population apply first, the twin fuses into its spiking layers: those
    whose window holds at most :data:`.lookup.FUSED_POOL_MAX_WINDOW` potentials and whose output
    is more than one position per channel (a global pooling made dynamo recompile the fused
    variant for its 1x1 output: 5 s on VGG16's first call, for a pooling of 2 potentials)."""
    pools: dict = {}
    for layer in graph.layers:
        for proj in layer.inputs:
            key = _first_pool(proj)
            if key is None:
                continue
            _, ho, wo = proj.ops[0].out_shape(graph.shape_of(proj.source))
            if key[0][0] * key[0][1] > lookup.FUSED_POOL_MAX_WINDOW or ho * wo == 1:
                continue
            if key not in pools.setdefault(proj.source, ()):
                pools[proj.source] += (key,)
    return pools


def _execute(graph: Graph, x: torch.Tensor, bias, weight, activation, pools: dict | None = None) -> dict:
    """The graph executor: every layer's ``v = bias + input_1 + input_2 + ...`` (added in that
    order; each input is its projection's ops applied to the source's activation), then the
    layer's activation. ``bias(li)``: the bias of layer ``li`` as a tensor of shape
    ``layer.shape`` (or broadcastable to ``(B, *layer.shape)``); ``weight(li, pi, oi)``: the
    weight of op ``oi`` of projection ``pi`` (``None``: from the op); ``activation(name, code,
    parts, pools)``: a spiking layer's value from its potentials' summands ``parts`` (bias
    first), and ``{pool: pooled value}`` for any of ``pools`` (:func:`_pools`: the average
    poolings its outgoing projections start with) it computed on the way; a projection takes
    such a pooled value instead of running that op (``pools``: ``_pools(graph)``, computed here
    when not given). The input is activated too when the graph encodes it
    (``graph.input_code``). Returns the activations by population name (:data:`INPUT`
    included)."""
    pools = _pools(graph) if pools is None else pools
    batch = x.shape[0]
    acts, pooled = {INPUT: x}, {}
    if graph.input_code is not None:
        acts[INPUT], pooled[INPUT] = activation(INPUT, graph.input_code, [x], pools.get(INPUT, ()))
    for li, layer in enumerate(graph.layers):
        parts = [bias(li)]  # broadcast against the inputs
        for pi, proj in enumerate(layer.inputs):
            h, first = acts[proj.source], 0
            done = pooled.get(proj.source, {}).get(_first_pool(proj))
            if done is not None:
                h, first = done, 1
            for oi, op in enumerate(proj.ops[first:], first):
                h = apply_op(op, h, weight(li, pi, oi))
            parts.append(h if h.shape[1:] == layer.shape else h.reshape(batch, *layer.shape))
        if layer.spiking:
            acts[layer.name], pooled[layer.name] = activation(
                layer.name, layer.code, parts, pools.get(layer.name, ())
            )
        else:
            v = parts[0]
            for h in parts[1:]:
                v = v + h
            acts[layer.name] = v
    return acts


def _relu(name, code, parts, pools) -> tuple:
    v = parts[0]
    for h in parts[1:]:
        v = v + h
    return v.clamp_min(0), {}


def relu_forward(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """The graph with a plain ReLU in place of every code (the input's too, when encoded): what
    the converted ANN computes. Returns the output layer's potentials ``(B, *out_shape)`` in
    ``x``'s dtype and on its device (float64 in, float64 out); the converter checks a conversion
    with it. Same executor as the twin (:func:`apply_op`, one layer loop)."""
    dtype, device = x.dtype, x.device

    def bias(li):
        return torch.from_numpy(graph.layers[li].bias.reshape(graph.layers[li].shape)).to(
            device=device, dtype=dtype
        )

    acts = _execute(graph, x, bias, lambda li, pi, oi: None, _relu)
    return acts[graph.output.name]


class FunctionalOutput(dict):
    """The raw result of the torch engine's differentiable-side executor (:func:`run`,
    :class:`GraphModule`): tensors on the run's device, nothing copied to numpy.

    Keys (attribute access works as for a namespace): ``output`` (the output layer's potentials,
    tensor ``(B, *out_shape)``), ``spike_counts`` (``{population: (B, 2) int64 tensor}``:
    encoding and calibration spikes per sample), ``spike_times`` (``{population: (t_enc,
    t_cal)}`` int64 tensors for the populations recorded) and ``decoded`` (``{population: z}``
    for the populations recorded). :func:`simulate` gives the same run as the
    backend-independent :class:`~scttfs_brian.results.SimulationResult`."""

    __getattr__ = dict.__getitem__


class GraphModule(nn.Module):
    """A graph's weights as torch buffers, executed with torch ops (conv2d, linear, avg_pool2d).

    Parameters
    ----------
    graph : Graph
    dtype : torch.dtype
        ``torch.float64`` (default; spike-exact against Brian2) or ``torch.float32`` (fast).
    compiled : bool or "auto"
        Each spiking layer maps its potentials to spike times and decoded values through its
        code's codeword boundaries (:func:`.lookup.boundaries`, derived from the stepwise rule once
        per code and dtype). ``compiled=False``: eager, one ``torch.bucketize``, gathers and one
        ``bincount`` for the spike counts. ``compiled=True``: the bias add, the comparisons
        (each selecting the next word's values), the spike counts and the average poolings the
        next layers start with (not for recorded layers) fused into one ``torch.compile`` call per layer
        (:func:`.lookup.compiled_lookup`); the first call per number of boundaries, dtype and
        set of outputs compiles (seconds; needs a C++ compiler on CPU, triton on GPU). ``"auto"`` (default):
        when the call's spiking layers hold at least :data:`.lookup.AUTO_COMPILE_MIN` potentials
        together (where compiling pays back), compiled for each layer whose code has at most
        :data:`.lookup.AUTO_COMPILE_MAX_BOUNDS` boundaries; eager for smaller calls, and eager everywhere on a device where
        ``torch.compile`` fails (one warning). All give the stepwise rule's results bit for
        bit; the compiled one is the fast one on CPU (about the plain ANN's time,
        ``benchmarks/results/twin_vs_ann.md``).
    method : {"lookup", "stepwise"}
        ``"lookup"`` (default) as above; ``"stepwise"`` runs the T-step loop of the rule in
        every layer instead (the reference the lookup is tested against; same results, slower).

    Attributes ``compiled`` and ``method`` may be changed between calls.
    """

    def __init__(
        self,
        graph: Graph,
        dtype: torch.dtype = torch.float64,
        compiled: bool | str = "auto",
        method: str = "lookup",
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS} (got {method!r})")
        if compiled not in (True, False, "auto"):
            raise ValueError(f"compiled must be True, False or 'auto' (got {compiled!r})")
        self.graph = graph
        self.compiled = compiled
        self.method = method
        for li, layer in enumerate(graph.layers):
            self.register_buffer(f"b{li}", torch.from_numpy(layer.bias.reshape(layer.shape)).to(dtype))
            for pi, proj in enumerate(layer.inputs):
                for oi, op in enumerate(proj.ops):
                    if isinstance(op, (Conv2d, Dense)):
                        self.register_buffer(f"w{li}_{pi}_{oi}", torch.from_numpy(op.weight).to(dtype))
        # per call: the spiking layers' potentials per sample (compiled="auto" decides on them)
        # and the poolings fused into the spiking layers
        self._spiking_size = sum(layer.size for layer in graph.layers if layer.code is not None)
        self._pools = _pools(graph)

    def forward(self, x: torch.Tensor, record: Any = (), counts: bool = True) -> FunctionalOutput:
        """The network on a batch ``x`` of shape ``(B, *graph.input_shape)`` (finite values;
        ``>= 0`` when the graph encodes its input). ``record``: population names (or ``True``
        for all) whose spike times and decoded values are returned; ``counts``: whether the
        spikes per sample are counted. Returns a :class:`FunctionalOutput`."""
        g = self.graph
        buffers = self._buffers  # every buffer is registered on the module itself
        dtype = buffers["b0"].dtype
        x = torch.as_tensor(x).to(device=buffers["b0"].device, dtype=dtype)
        if tuple(x.shape[1:]) != g.input_shape:
            raise ValueError(
                f"inputs must have shape (batch, {', '.join(map(str, g.input_shape))}) (got {tuple(x.shape)})"
            )
        if x.numel():
            x_min, x_max = torch.aminmax(x)  # one pass; NaN propagates
            if not bool(torch.isfinite(x_min) & torch.isfinite(x_max)):
                raise ValueError("inputs must be finite (got NaN or inf); clean the batch before simulating")
        record = set(g.recording(record))  # whole populations; neuron selections are Brian2's
        spike_counts, spike_times, decoded = {}, {}, {}
        size = len(x) * self._spiking_size

        def spike(name, code, parts, pools):
            # v = parts[0] + parts[1] + ...: potentials of finite inputs and (graph-validated)
            # finite weights, no re-check; the code's boundaries give z (and spike times, counts,
            # and z average-pooled as the next layers' projections start)
            # a recorded layer's poolings stay eager: recording is for analysis, and each fused
            # variant is one more compilation (seconds)
            pools = () if name in record else pools
            z, times, n, pooled = encode_layer(
                code, parts, compiled=self.compiled, times=name in record, counts=counts, method=self.method,
                auto_size=size, pools=pools,
            )
            if counts:
                spike_counts[name] = n
            if name in record:
                spike_times[name] = times
                decoded[name] = z
            return z, dict(zip(pools, pooled))

        if g.input_code is not None and x.numel() and bool(x_min < 0):
            raise ValueError(
                f"inputs must be >= 0 when the input is SC-TTFS-encoded (min {x.min().item():.4g}); "
                "use unnormalized inputs or analog input coding (input_code=None)"
            )
        acts = _execute(
            g, x, lambda li: buffers[f"b{li}"], lambda li, pi, oi: buffers.get(f"w{li}_{pi}_{oi}"), spike,
            self._pools,
        )
        return FunctionalOutput(
            output=acts[g.output.name], spike_counts=spike_counts, spike_times=spike_times, decoded=decoded
        )


_MODULE_CACHE: dict = {}


def _module(graph: Graph, dtype, device, compiled: bool | str, method: str) -> GraphModule:
    key = (id(graph), dtype, str(device))
    cached = _MODULE_CACHE.get(key)
    if cached is None or cached.graph is not graph:
        cached = GraphModule(graph, dtype).to(device)
        _MODULE_CACHE.clear()  # keep one network's tensors alive at a time
        _MODULE_CACHE[key] = cached
    cached.compiled = compiled
    cached.method = method
    return cached


@torch.no_grad()
def run(
    graph: Graph,
    x: Any,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    record: Any = (),
    batch_size: int | None = None,
    compiled: bool | str = "auto",
    method: str = "lookup",
) -> FunctionalOutput:
    """Run the torch twin on a batch ``x`` of shape ``(B, *graph.input_shape)``.

    ``record``: population names (or ``True`` for all) whose spike times and decoded values
    are returned. ``batch_size`` splits large inputs into chunks. Tensors stay on ``device``
    (default: ``x``'s device). ``compiled=True`` fuses each layer's bias add, codebook lookup
    and spike counts with ``torch.compile``, ``False`` runs them eagerly, ``"auto"`` (default)
    compiles the large layers where ``torch.compile`` works; ``method="stepwise"`` runs the T-step loop instead
    of the lookup (see :class:`GraphModule`; same results). Returns the raw tensors, a
    :class:`FunctionalOutput`; :func:`simulate` returns the same run as a ``SimulationResult``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    x = torch.as_tensor(x)
    device = device if device is not None else x.device
    module = _module(graph, dtype, device, compiled, method)
    if batch_size is None or len(x) <= batch_size:
        return module(x, record=record)
    parts = [module(x[i : i + batch_size], record=record) for i in range(0, len(x), batch_size)]
    cat = lambda seq: torch.cat(list(seq))  # noqa: E731
    return FunctionalOutput(
        output=cat(p.output for p in parts),
        spike_counts={k: cat(p.spike_counts[k] for p in parts) for k in parts[0].spike_counts},
        spike_times={
            k: (cat(p.spike_times[k][0] for p in parts), cat(p.spike_times[k][1] for p in parts))
            for k in parts[0].spike_times
        },
        decoded={k: cat(p.decoded[k] for p in parts) for k in parts[0].decoded},
    )


def simulate(graph: Graph, x: Any, *, record: Any = (), batch_size: int = 256, **kwargs) -> SimulationResult:
    """:func:`run` with the backend-independent :class:`SimulationResult` (numpy arrays): the
    result type both engines return (``backend="torch"``); keyword arguments go to :func:`run`."""
    out = run(graph, x, record=record, batch_size=batch_size, **kwargs)
    outputs = out.output.reshape(len(out.output), -1).double().cpu().numpy()
    return SimulationResult(
        outputs=outputs,
        predictions=outputs.argmax(axis=1),
        spike_counts={k: v.cpu().numpy() for k, v in out.spike_counts.items()},
        latency_steps=graph.latency_steps,
        spike_times={k: (a.cpu().numpy(), b.cpu().numpy()) for k, (a, b) in out.spike_times.items()},
        backend="torch",
    )
