"""The Brian2 engine: SC-TTFS/TTFS neuron groups (the equations), networks built from a graph,
runtime and standalone runs, devices (cpp_standalone, cuda_standalone) and plotting.

Modules (arrows point down the list, never up): ``runtime`` (:func:`simulate`) and ``program``
(:func:`compile_program`, :class:`StandaloneProgram`) run what ``build`` builds (groups,
monitors, input table; synapses from ``connect``) on a target from ``devices`` and hand plain
arrays to ``collect`` (one :class:`~scttfs_brian.results.SimulationResult`); ``memory`` decides
the number of copies and refuses builds that would not fit; ``neurons`` holds the equations;
``usage`` is the program wrapper.

Names are resolved lazily: ``python -m scttfs_brian.brian.usage`` (the wrapper every compiled
program runs under) must not import Brian2.
"""

import importlib

_LAZY = {
    **dict.fromkeys(["simulate"], "runtime"),
    **dict.fromkeys(["compile_program", "StandaloneProgram"], "program"),
    **dict.fromkeys(
        ["estimate_memory", "BuildTooLarge", "BYTES_PER_SYNAPSE", "GENERATED_BYTES_PER_SYNAPSE", "synapses_per_copy",
         "neurons_per_copy", "DEFAULT_COPIES", "DEFAULT_SYNAPSE_BUDGET"],
        "memory",
    ),
    **dict.fromkeys(["build_network", "BuiltNetwork"], "build"),
    **dict.fromkeys(
        ["spiking_layer", "integrating_layer", "layer_synapses", "encode_layer", "LayerMonitors", "spike_steps",
         "SCTTFSGroup", "finer_time_code"],
        "neurons",
    ),
    **dict.fromkeys(
        ["use_target", "check_target", "TARGETS", "RUNTIME_TARGETS", "STANDALONE_TARGETS", "cuda_available",
         "use_cuda_standalone"],
        "devices",
    ),
    **dict.fromkeys(["plot_raster", "plot_membrane", "plot_response"], "plotting"),
    **dict.fromkeys(["simulate_distributed"], "distributed"),
}  # fmt: skip

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
