"""A Brian2 :class:`~brian2.Network` from a :class:`~scttfs_brian.graph.Graph`: the layers'
groups in ``copies`` side-by-side copies, their synapses (:mod:`.connect`), the monitors, and
the input table the first spiking layer reads.

Neuron ``c * n + k`` of a group is neuron ``k`` of copy ``c``, so one time step advances
``copies`` inputs with vectorized code. The first spiking layer reads its potential from a 2-D
:class:`~brian2.TimedArray` ``I_in`` at each window boundary (:func:`input_table`): ``W x + b``
for analog input, or the pixels for an encoded input layer; the caller sets it in
``BuiltNetwork.input_group.namespace["I_in"]`` before running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import brian2 as b2
import numpy as np

from ..coding import as_potentials
from ..graph import INPUT, Graph
from .connect import connect_projection
from .neurons import LayerMonitors, integrating_layer, layer_synapses, spiking_layer

__all__ = ["BuiltNetwork", "build_network", "brian_name", "check_inputs", "input_table"]


@dataclass
class BuiltNetwork:
    """A network built by :func:`build_network`: ordinary Brian2 objects."""

    net: b2.Network
    #: ``{population: NeuronGroup}`` (the encoded input layer under ``"input"``).
    groups: dict
    #: ``{spiking population: LayerMonitors}``.
    monitors: dict
    #: Records the output layer's ``v`` at the start of every window.
    out_monitor: b2.StateMonitor
    #: The group that reads the input table ``I_in``.
    input_group: b2.NeuronGroup
    #: Neurons of one copy of ``input_group``.
    input_size: int
    copies: int
    windows: dict = field(default_factory=dict)


def brian_name(index: int, name: str) -> str:
    """A valid Brian2 object name for layer ``index`` named ``name``."""
    clean = "".join(ch if ch.isalnum() else "_" for ch in name)
    return f"L{index}_{clean}"[:60]


def build_network(
    graph: Graph,
    copies: int,
    dt: b2.Quantity = 1 * b2.ms,
    shared_weights: bool = False,
    generated: bool = False,
) -> BuiltNetwork:
    """Build ``copies`` copies of ``graph`` under the current Brian2 target or device.

    Parameters
    ----------
    shared_weights : bool
        One table of each projection's distinct weights, indexed per synapse (see
        :func:`~.connect.connect_projection`).
    generated : bool
        Create conv and dense projections with Brian2's generated code
        (:func:`~.connect.connect_conv`); needs ``shared_weights``.
    """
    if generated and not shared_weights:
        raise ValueError("generated connectivity stores each kernel once: it needs shared_weights=True")
    T = graph.T
    groups, objects = {}, []
    input_group, input_size = None, 0
    if graph.input_code is not None:
        input_size = int(np.prod(graph.input_shape))
        groups[INPUT] = input_group = spiking_layer(
            copies * input_size,
            graph.input_code,
            name="L_input",
            dt=dt,
            window_input="I_in(t, i)",
            namespace={"I_in": None},
        )
    for li, layer in enumerate(graph.layers):
        name = brian_name(li, layer.name)
        analog = graph.input_code is None and any(p.source == INPUT for p in layer.inputs)
        if layer.spiking:
            G = spiking_layer(
                copies * layer.size,
                layer.code,
                name=name,
                dt=dt,
                window_input="I_in(t, i)" if analog else None,
                namespace={"I_in": None} if analog else None,
            )
        else:
            G = integrating_layer(copies * layer.size, T, name=name, dt=dt)
        G.b = np.tile(layer.bias, copies)
        groups[layer.name] = G
        if analog:
            input_group, input_size = G, layer.size
            continue
        for pi, proj in enumerate(layer.inputs):
            weight = "w : 1 (linked)\nwidx : integer (constant)" if shared_weights else "w : 1"
            S = layer_synapses(
                groups[proj.source],
                G,
                name=f"{name}_from{pi}",
                delay_steps=proj.delay_windows * T,
                weight=weight,
            )
            objects += connect_projection(
                S,
                graph,
                proj,
                copies,
                shared_weights=shared_weights,
                generated=generated,
                table_name=f"{name}_from{pi}_weights",
            )
            objects.append(S)
    monitors = {name: LayerMonitors.attach(G) for name, G in groups.items() if name != graph.output.name}
    for mon in monitors.values():
        objects += mon.objects
    out = groups[graph.output.name]
    out_mon = b2.StateMonitor(out, "v", record=True, dt=T * dt, when="start", order=1, name="output_v")
    net = b2.Network(*groups.values(), *objects, out_mon)
    return BuiltNetwork(net, groups, monitors, out_mon, input_group, input_size, copies, dict(graph.windows))


def check_inputs(graph: Graph, x: Any) -> np.ndarray:
    """``x`` (numpy or torch) as a float64 array of shape ``(N, *graph.input_shape)``; refuses
    another shape, non-finite values, and negative values for an encoded input layer."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(as_potentials(x, "x"), dtype=np.float64)
    if x.shape[1:] != graph.input_shape:
        raise ValueError(
            f"x must have shape (n_inputs, {', '.join(map(str, graph.input_shape))}) (got {x.shape}); "
            "pass a batch, e.g. x[None] for a single input"
        )
    if graph.input_code is not None and x.size and x.min() < 0:
        raise ValueError(
            f"x must be >= 0 when the input is SC-TTFS-encoded (min {x.min():.4g}); "
            "use unnormalized inputs or analog input coding (input_code=None)"
        )
    return x


def input_table(graph: Graph, x: np.ndarray, copies: int, slots: int) -> np.ndarray:
    """The values of ``I_in``: one row per window (slot ``s``: input ``s * copies + c`` in the
    columns of copy ``c``), plus a final row of zeros; columns are copy-major neurons."""
    if graph.input_code is not None:
        values = x.reshape(len(x), -1)
    else:
        layer = next(layer for layer in graph.layers if any(p.source == INPUT for p in layer.inputs))
        values = layer.inputs[0].apply(x, graph.input_shape).reshape(len(x), -1) + layer.bias
    n = values.shape[1]
    table = np.zeros(((slots + 1) * copies, n))
    table[: len(values)] = values
    return table.reshape(slots + 1, copies * n)
