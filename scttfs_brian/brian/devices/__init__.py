"""Where a Brian2 network runs: runtime targets (``numpy``, ``cython``) and the standalone
devices (``cpp_standalone``, brian2cuda's ``cuda_standalone``), as Brian2 keeps them apart in
``brian2/devices/``.

``targets`` (:func:`use_target`, one context manager for every target) imports ``standalone``
(the device switch and the spike-queue patch) and ``cuda`` (the C++17 override); ``cuda``
imports ``standalone``; nothing points back.
"""

from .cuda import NOT_INSTALLED, apply_cxx17, cuda_available, use_cuda_standalone
from .standalone import make_args, reserve_spike_queue_source, reserve_spike_queues, standalone_device
from .targets import RUNTIME_TARGETS, STANDALONE_TARGETS, TARGETS, check_target, use_target

__all__ = [
    "NOT_INSTALLED",
    "RUNTIME_TARGETS",
    "STANDALONE_TARGETS",
    "TARGETS",
    "apply_cxx17",
    "check_target",
    "cuda_available",
    "make_args",
    "reserve_spike_queue_source",
    "reserve_spike_queues",
    "standalone_device",
    "use_cuda_standalone",
    "use_target",
]
