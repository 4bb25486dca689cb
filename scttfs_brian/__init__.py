"""scttfs-brian: the SC-TTFS neuron model (Feng et al. 2024) in Brian2, with a torch engine.

Public API::

    from scttfs_brian import ThresholdKernel, SCTTFSCode, TTFSCode, PRESETS, convert

The subpackages (see docs/architecture.md): ``coding`` (the rule), ``graph`` (the network as
data), ``torch`` (the torch engine), ``conversion`` (torch ANN -> graph), ``training``,
``brian`` (the Brian2 engine), ``pipeline`` (experiments), and the modules ``network``,
``results``, ``analysis``, ``data``, ``models``, ``cli``.
"""

from .coding import PRESETS, SCTTFSCode, ThresholdKernel, TTFSCode

__version__ = "0.1.0"

__all__ = ["ThresholdKernel", "SCTTFSCode", "TTFSCode", "PRESETS", "convert", "SpikingNetwork", "SimulationResult"]

# lazy: importing the package must not import torch.fx, torch or Brian2
_LAZY = {
    "convert": ("conversion", "convert"),
    "SpikingNetwork": ("network", "SpikingNetwork"),
    "SimulationResult": ("results", "SimulationResult"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'scttfs_brian' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
