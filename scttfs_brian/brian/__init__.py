"""The Brian2 engine: SC-TTFS/TTFS neuron groups (the equations), networks built from a graph,
runtime and standalone runs, devices (cpp_standalone, cuda_standalone) and plotting.

Names are resolved lazily: ``python -m scttfs_brian.brian.usage`` (the wrapper every compiled
program runs under) must not import Brian2.
"""

import importlib

_LAZY = {
    **dict.fromkeys(
        ["simulate", "compile_program", "StandaloneProgram", "estimate_memory", "BuildTooLarge",
         "BYTES_PER_SYNAPSE", "GENERATED_BYTES_PER_SYNAPSE", "synapses_per_copy", "neurons_per_copy"],
        "runner",
    ),
    **dict.fromkeys(
        ["spiking_layer", "integrating_layer", "layer_synapses", "encode_layer", "LayerMonitors", "spike_steps"],
        "neurons",
    ),
    **dict.fromkeys(["use_target", "check_target", "TARGETS", "RUNTIME_TARGETS", "STANDALONE_TARGETS"], "targets"),
    **dict.fromkeys(["plot_raster", "plot_membrane", "plot_response"], "plotting"),
}  # fmt: skip

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
