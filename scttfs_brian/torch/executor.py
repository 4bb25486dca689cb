r"""The torch twin of a converted network: the "pre-conversion SNN" of section 3.4.

Each ReLU of the ANN is replaced by its layer's code (:mod:`.coding`): a spiking layer's value
is ``z = theta_e(t_enc) + theta_c(t_cal)`` with the spike times of the stepwise rule, computed
on the whole batch at once (any device, float32 or float64). In float64 it gives, neuron for
neuron, the spike times of the Brian2 network built from the same graph.

Two pieces:

* :func:`run` / :class:`GraphModule` execute a :class:`~.graph.Graph` (fixed codes) and report
  spike times and counts;
* :class:`SpikingActivation` is an ``nn.Module`` with trainable kernels, used in place of
  ``nn.ReLU`` when fine-tuning (section 3.4). Its forward pass is the same rule; its backward
  pass differentiates ``theta(t)`` with respect to ``alpha, beta, k`` at the (piecewise
  constant) spike times, eqs. 21-23, and passes the gradient straight through to ``v`` inside
  the code's range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode, stepwise_spike_times
from ..graph import INPUT, AvgPool2d, Conv2d, Dense, Flatten, Graph
from ..results import SimulationResult

__all__ = ["GraphModule", "FunctionalOutput", "run", "simulate", "SpikingActivation"]


def _apply_op(op, x: torch.Tensor, params: dict, key: str) -> torch.Tensor:
    if isinstance(op, Conv2d):
        return F.conv2d(x, params[key], stride=op.stride, padding=op.padding)
    if isinstance(op, Dense):
        return F.linear(x, params[key])
    if isinstance(op, AvgPool2d):
        return F.avg_pool2d(x, op.kernel, op.stride, op.padding, count_include_pad=True)
    if isinstance(op, Flatten):
        return x.reshape(len(x), -1)
    raise TypeError(f"unknown graph operation {type(op).__name__}")


class FunctionalOutput(dict):
    """Result of :func:`run`: ``output`` (tensor ``(B, *out_shape)``), ``spike_counts``
    (``{population: (B, 2) int tensor}``), ``spike_times`` (``{population: (t_enc, t_cal)}``
    for the populations recorded) and ``decoded`` (decoded values, when recorded). Attribute
    access works as for a namespace."""

    __getattr__ = dict.__getitem__


class GraphModule(nn.Module):
    """A graph's weights as torch buffers, executed with torch ops (conv2d, linear, avg_pool2d).

    Parameters
    ----------
    graph : Graph
    dtype : torch.dtype
        ``torch.float64`` (default; spike-exact against Brian2) or ``torch.float32`` (fast).
    compiled : bool
        Each spiking layer maps its potentials to spike times and decoded values through its
        code's codeword boundaries (:meth:`~.coding.CodeBase.boundaries`, derived from the
        stepwise rule once per code and dtype): eager, one ``torch.bucketize`` and gathers;
        ``compiled=True``, the bias add, the comparisons, the gathers and the spike counts fused
        into one ``torch.compile`` pass per layer (:func:`~.coding.compiled_lookup`). Both give
        the stepwise rule's results bit for bit; the compiled one is the fast one on CPU (about
        the plain ANN's time, ``benchmarks/results/twin_vs_ann.md``). The first call per code,
        dtype and layer shape compiles (seconds; needs a C++ compiler).
    """

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float64, compiled: bool = False):
        super().__init__()
        self.graph = graph
        self.compiled = compiled
        for li, layer in enumerate(graph.layers):
            self.register_buffer(f"b{li}", torch.from_numpy(layer.bias.reshape(layer.shape)).to(dtype))
            for pi, proj in enumerate(layer.inputs):
                for oi, op in enumerate(proj.ops):
                    if isinstance(op, (Conv2d, Dense)):
                        self.register_buffer(f"w{li}_{pi}_{oi}", torch.from_numpy(op.weight).to(dtype))

    def forward(self, x: torch.Tensor, record: Any = (), counts: bool = True) -> FunctionalOutput:
        g = self.graph
        buffers = dict(self.named_buffers())
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

        def spike(name, code, parts):
            # v = parts[0] + parts[1] + ...: potentials of finite inputs and (graph-validated)
            # finite weights, no re-check; the code's boundaries give z (and spike times, counts)
            z, times, n = code._encode_layer(parts, compiled=self.compiled, times=name in record, counts=counts)
            if counts:
                spike_counts[name] = n
            if name in record:
                spike_times[name] = times
                decoded[name] = z
            return z

        acts = {INPUT: x}
        if g.input_code is not None:
            if x.numel() and bool(x_min < 0):
                raise ValueError(
                    f"inputs must be >= 0 when the input is SC-TTFS-encoded (min {x.min().item():.4g}); "
                    "use unnormalized inputs or analog input coding (input_code=None)"
                )
            acts[INPUT] = spike(INPUT, g.input_code, [x])
        for li, layer in enumerate(g.layers):
            parts = [buffers[f"b{li}"].expand(len(x), *layer.shape)]
            for pi, proj in enumerate(layer.inputs):
                h = acts[proj.source]
                for oi, op in enumerate(proj.ops):
                    h = _apply_op(op, h, buffers, f"w{li}_{pi}_{oi}")
                parts.append(h.reshape(len(x), *layer.shape))
            if layer.spiking:
                acts[layer.name] = spike(layer.name, layer.code, parts)
            else:
                v = parts[0]
                for h in parts[1:]:
                    v = v + h
                acts[layer.name] = v
        return FunctionalOutput(
            output=acts[g.output.name], spike_counts=spike_counts, spike_times=spike_times, decoded=decoded
        )


_MODULE_CACHE: dict = {}


def _module(graph: Graph, dtype, device, compiled: bool) -> GraphModule:
    key = (id(graph), dtype, str(device))
    cached = _MODULE_CACHE.get(key)
    if cached is None or cached.graph is not graph:
        cached = GraphModule(graph, dtype).to(device)
        _MODULE_CACHE.clear()  # keep one network's tensors alive at a time
        _MODULE_CACHE[key] = cached
    cached.compiled = compiled
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
    compiled: bool = False,
) -> FunctionalOutput:
    """Run the torch twin on a batch ``x`` of shape ``(B, *graph.input_shape)``.

    ``record``: population names (or ``True`` for all) whose spike times and decoded values
    are returned. ``batch_size`` splits large inputs into chunks. Tensors stay on ``device``
    (default: ``x``'s device). ``compiled=True`` fuses each layer's bias add, codebook lookup
    and spike counts with ``torch.compile`` (see :class:`GraphModule`; same results).
    """
    x = torch.as_tensor(x)
    device = device if device is not None else x.device
    module = _module(graph, dtype, device, compiled)
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
    """:func:`run` with the backend-independent :class:`SimulationResult` (numpy arrays)."""
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


# --------------------------------------------------------------------------------------------
# Trainable activation (section 3.4)
# --------------------------------------------------------------------------------------------
class _Kernel(nn.Module):
    """Trainable ``alpha, beta, k`` of one threshold kernel (eq. 14)."""

    def __init__(self, kernel: ThresholdKernel):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(kernel.alpha, dtype=torch.float64))
        self.beta = nn.Parameter(torch.tensor(kernel.beta, dtype=torch.float64))
        self.k = nn.Parameter(torch.tensor(kernel.k, dtype=torch.float64))

    def table(self, T: int) -> torch.Tensor:
        t = torch.arange(T, dtype=self.alpha.dtype, device=self.alpha.device)
        return self.alpha * torch.exp(-self.k * t + self.beta)

    def export(self) -> ThresholdKernel:
        return ThresholdKernel(float(self.alpha.detach()), float(self.beta.detach()), float(self.k.detach()))


class SpikingActivation(nn.Module):
    r"""Drop-in replacement for ``nn.ReLU`` with a trainable SC-TTFS or TTFS code.

    Forward: the stepwise rule (eqs. 9-13) with the current kernels, returning
    ``z = theta_e(t_enc) + theta_c(t_cal)``. Backward:

    * to the kernels, eqs. 21-23: :math:`\partial\theta/\partial\alpha = e^{-kt+\beta}`,
      :math:`\partial\theta/\partial k = -t\,\theta(t)`, :math:`\partial\theta/\partial\beta =
      \theta(t)`, at the spike times (which are piecewise constant in the parameters);
    * to the potential ``v``: straight through (gradient 1) where ``0 < v <= max decodable
      value``, 0 elsewhere (silent or clipped neurons do not respond to small changes).

    Parameters
    ----------
    code : SCTTFSCode or TTFSCode
        Initial kernels and window length.
    """

    def __init__(self, code: SCTTFSCode | TTFSCode):
        super().__init__()
        self.T = code.T
        self.encode = _Kernel(code.encode)
        self.calibrate = _Kernel(code.calibrate) if code.calibrate is not None else None

    def tables(self):
        tab_e = self.encode.table(self.T)
        tab_c = self.calibrate.table(self.T) if self.calibrate is not None else None
        return tab_e, tab_c

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        tab_e, tab_c = self.tables()
        t_enc, t_cal = stepwise_spike_times(v, tab_e, tab_c)
        z = torch.where(t_enc >= 0, tab_e.to(v.dtype)[t_enc.clamp(min=0)], torch.zeros((), dtype=v.dtype, device=v.device))
        top = tab_e[0]
        if tab_c is not None:
            z = z + torch.where(
                t_cal >= 0, tab_c.to(v.dtype)[t_cal.clamp(min=0)], torch.zeros((), dtype=v.dtype, device=v.device)
            )
            top = top + tab_c[0]
        inside = (v > 0) & (v <= top.detach().to(v.dtype))
        return z + torch.where(inside, v - v.detach(), torch.zeros_like(v))

    def export(self) -> SCTTFSCode | TTFSCode:
        """The current kernels as an immutable code (for conversion to Brian2)."""
        if self.calibrate is None:
            return TTFSCode(self.T, self.encode.export())
        return SCTTFSCode(self.T, self.encode.export(), self.calibrate.export())

    def extra_repr(self) -> str:
        return f"T={self.T}, calibrate={self.calibrate is not None}"


def quantization_error(code, activations: Any) -> float:
    """Mean ``|a - quantize(a)|`` of ANN activations under ``code`` (ReLU applied to ``a``)."""
    a = np.maximum(np.asarray(activations, dtype=np.float64), 0.0)
    return float(np.mean(np.abs(a - code.quantize(a))))
