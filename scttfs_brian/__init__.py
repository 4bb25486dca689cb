"""scttfs-brian: the SC-TTFS neuron model (Feng et al. 2024) in Brian2, with a torch twin.

Public API::

    from scttfs_brian import ThresholdKernel, SCTTFSCode, TTFSCode, convert
"""

from .coding import SCTTFSCode, ThresholdKernel, TTFSCode

__version__ = "0.1.0"

__all__ = ["ThresholdKernel", "SCTTFSCode", "TTFSCode", "convert", "SpikingNetwork", "PRESETS"]

#: Table 1 of the paper: kernel initializations for CIFAR10 and CIFAR100 (encode, calibrate).
PRESETS = {
    "cifar10": (ThresholdKernel(alpha=2.0, beta=-1.0, k=0.8), ThresholdKernel(alpha=1.0, beta=0.8, k=1.0)),
    "cifar100": (ThresholdKernel(alpha=4.5, beta=-1.0, k=0.9), ThresholdKernel(alpha=2.0, beta=-0.5, k=1.0)),
}


def __getattr__(name):  # lazy: importing the package must not import torch.fx / Brian2 networks
    if name == "convert":
        from .importer import convert

        return convert
    if name == "SpikingNetwork":
        from .network import SpikingNetwork

        return SpikingNetwork
    raise AttributeError(f"module 'scttfs_brian' has no attribute {name!r}")
