"""Memory policy of a Brian2 build: bytes per synapse and neuron, the default number of network
copies, and the refusal of a build that would not fit (:class:`BuildTooLarge`), all decided
before anything is allocated.

The bounds are measured (``benchmarks/results/cifar_brian.md``); :func:`estimate_memory` is
what :func:`~.runtime.simulate` and :func:`~.program.compile_program` check against the memory
available. Nothing here imports Brian2.
"""

from __future__ import annotations

import numpy as np
import psutil

from ..graph import INPUT, Graph

__all__ = [
    "BYTES_PER_SYNAPSE",
    "GENERATED_BYTES_PER_SYNAPSE",
    "BYTES_PER_NEURON",
    "DEFAULT_SYNAPSE_BUDGET",
    "DEFAULT_COPIES",
    "BuildTooLarge",
    "synapses_per_copy",
    "neurons_per_copy",
    "estimate_memory",
    "choose_copies",
    "check_memory",
]

#: Bound on the bytes per synapse of a build from index arrays (runtime mode, or standalone with
#: ``connectivity="arrays"``): measured 43-53 bytes on ResNet20 (peak over build and run,
#: benchmarks/results/cifar_brian.md), plus headroom for the index arrays passed to ``connect``.
BYTES_PER_SYNAPSE = 100
#: Bound on the bytes per synapse of a cpp_standalone program with generated connectivity:
#: int32 ``_synaptic_pre``, ``_synaptic_post`` and ``widx``, one int32 spike-queue entry per
#: pathway (queues reserved exactly, see devices/standalone.py), no per-synapse delay; measured
#: 24-25 bytes on VGG16 and ResNet20 (program peak resident memory / synapses),
#: benchmarks/results/cifar_brian.md.
GENERATED_BYTES_PER_SYNAPSE = 32
#: Bytes per neuron (state variables, spike spaces, monitors' share), a generous bound.
BYTES_PER_NEURON = 200
#: Default bound on the synapses of one build (all copies), which sets the default ``copies``.
DEFAULT_SYNAPSE_BUDGET = 8_000_000
#: Default number of network copies (runtime mode: ~256 copies saturate the vectorized
#: step on the MLP benchmark; more copies only add build time).
DEFAULT_COPIES = 256


class BuildTooLarge(MemoryError):
    """The requested Brian2 build would not fit in memory; the message says what would."""


def synapses_per_copy(graph: Graph) -> int:
    """Number of synapses of one copy of the network (analog input projections excluded)."""
    total = 0
    for layer in graph.layers:
        for proj in layer.inputs:
            if proj.source == INPUT and graph.input_code is None:
                continue
            total += proj.n_synapses(graph.shape_of(proj.source))
    return total


def neurons_per_copy(graph: Graph) -> int:
    """Number of neurons of one copy of the network (the encoded input layer included)."""
    n = sum(layer.size for layer in graph.layers)
    if graph.input_code is not None:
        n += int(np.prod(graph.input_shape))
    return n


def estimate_memory(
    graph: Graph, copies: int, n_inputs: int = 0, bytes_per_synapse: int = BYTES_PER_SYNAPSE
) -> int:
    """Bytes a build with ``copies`` copies needs (synapses x bytes per synapse, neurons,
    input table), before anything is allocated."""
    first = max(
        (layer.size for layer in graph.layers if any(p.source == INPUT for p in layer.inputs)), default=0
    )
    n_in = int(np.prod(graph.input_shape)) if graph.input_code is not None else first
    return int(
        copies * synapses_per_copy(graph) * bytes_per_synapse
        + copies * neurons_per_copy(graph) * BYTES_PER_NEURON
        + (n_inputs + copies) * n_in * 8
    )


def choose_copies(graph: Graph, n_inputs: int, copies: int | None) -> int:
    """The number of network copies for ``n_inputs`` inputs: ``copies`` checked, or the default
    (``DEFAULT_COPIES``, fewer when they would exceed ``DEFAULT_SYNAPSE_BUDGET`` synapses);
    never more than ``n_inputs``."""
    if copies is None:
        per_copy = max(synapses_per_copy(graph), 1)
        copies = int(max(1, min(n_inputs, DEFAULT_COPIES, DEFAULT_SYNAPSE_BUDGET // per_copy)))
    if not isinstance(copies, (int, np.integer)) or copies < 1:
        raise ValueError(f"copies must be a positive integer (got {copies!r})")
    return int(min(copies, n_inputs))


def check_memory(graph: Graph, copies: int, n_inputs: int, per_synapse: int, memory_limit: int | None) -> int:
    """Refuse with :class:`BuildTooLarge` a build estimated above ``memory_limit`` (default: 80%
    of the memory available now); returns the estimate."""
    limit = memory_limit if memory_limit is not None else int(0.8 * psutil.virtual_memory().available)
    need = estimate_memory(graph, copies, n_inputs, per_synapse)
    if need > limit:
        fit = max(0, int(copies * limit / need))
        raise BuildTooLarge(
            f"a Brian2 build with {copies} network copies needs about {need / 2**30:.2f} GiB "
            f"({copies * synapses_per_copy(graph):,} synapses x {per_synapse} B, plus neurons and inputs), "
            f"but only {limit / 2**30:.2f} GiB may be used; "
            + (f"use copies={fit} or fewer" if fit else "this network does not fit even as a single copy")
        )
    return need
