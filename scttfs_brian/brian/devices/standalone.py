"""The standalone devices' common set-up: ``set_device`` for one build and back to runtime
mode afterwards, a bound on make's parallel jobs, and Brian2's spike queue with each source's
synapse list reserved exactly (a memory saving written into every ``cpp_standalone`` project).

Used by :mod:`.targets` (``cpp_standalone``) and :mod:`.cuda` (``cuda_standalone``); imports
neither.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator

import brian2 as b2

__all__ = ["make_args", "reserve_spike_queue_source", "reserve_spike_queues", "standalone_device"]


def make_args(args: list) -> list:
    """Brian2's make arguments with a bounded number of parallel jobs.

    Brian2's default is a bare ``-j`` (no limit): make then starts one compiler per code
    object at once, hundreds for a CIFAR-sized network, ~150 MB each, which exhausted 24 GB
    here. A bare ``-j`` becomes ``-j <number of CPUs>``; an explicit job count is kept.
    """
    args = list(args)
    if "-j" in args:
        i = args.index("-j")
        if i + 1 >= len(args) or not str(args[i + 1]).isdigit():
            args.insert(i + 1, str(os.cpu_count() or 1))
    return args


# Brian2's C++ spike queue (cspikequeue.cpp, copied to brianlib/spikequeue.h of every
# standalone project) fills one list of synapses per source neuron with push_back, so each list
# ends with a power-of-two capacity: 1024 entries for a neuron with 576 synapses (64 channels x
# 3x3). Per pathway that is ~8 bytes per synapse instead of 4, and every SC-TTFS projection has
# two pathways. Counting first and reserving exactly keeps the same lists in the same order.
_QUEUE_FILL = re.compile(
    r"(?P<indent>[ \t]*)for \(int i=0; i<n_synapses; i\+\+\)\s*\n"
    r"\s*synapses\[sources\[i\] - source_start\]\.push_back\(i \+ openmp_padding\);"
)
_QUEUE_RESERVE = """{indent}{{  // scttfs_brian: reserve each source's list exactly (see devices/standalone.py)
{indent}    vector<int> _counts(source_end - source_start, 0);
{indent}    for (int i=0; i<n_synapses; i++)
{indent}        _counts[sources[i] - source_start]++;
{indent}    for (size_t s=0; s<_counts.size(); s++)
{indent}        synapses[s].reserve(_counts[s]);
{indent}}}
"""


def reserve_spike_queue_source(text: str) -> str:
    """``text`` (Brian2's cspikequeue.cpp) with the per-source synapse lists reserved exactly;
    raises ``ValueError`` if the fill loop is not found (another Brian2 version)."""
    match = _QUEUE_FILL.search(text)
    if match is None:
        raise ValueError("the synapse-list fill loop of Brian2's spike queue was not found")
    return text[: match.start()] + _QUEUE_RESERVE.format(indent=match.group("indent")) + text[match.start() :]


def reserve_spike_queues(device) -> None:
    """Make ``device`` (cpp_standalone) write the exactly reserved spike queue into its
    project (:func:`reserve_spike_queue_source`); warns and leaves Brian2's queue if the source
    differs from the one this was written for."""
    original = device.copy_source_files

    def copy_source_files(writer, directory):
        original(writer, directory)
        path = os.path.join(directory, "brianlib", "spikequeue.h")
        with open(path) as f:
            text = f.read()
        try:
            text = reserve_spike_queue_source(text)
        except ValueError as err:
            warnings.warn(f"{err}; spike queues keep Brian2's growth (up to 2x their memory)", stacklevel=2)
            return
        with open(path, "w") as f:
            f.write(text)

    device.copy_source_files = copy_source_files


@contextlib.contextmanager
def standalone_device(
    name: str,
    directory: str | None = None,
    *,
    prefix: str = "scttfs_standalone_",
    build_on_run: bool = True,
    **build_options,
) -> Iterator[str]:
    """``set_device(name, build_on_run=...)`` for the enclosed build; yields the build
    directory (a temporary one unless given). Afterwards runtime mode is restored
    (``device.reinit()``, ``device.activate()``, ``set_device('runtime')``) so that later
    builds in the same process work."""
    old_target = b2.prefs.codegen.target
    old_make_args = b2.prefs.devices.cpp_standalone.extra_make_args_unix
    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        directory = tmp.name
    if build_on_run:
        build_options.setdefault("with_output", False)
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = make_args(old_make_args)
    b2.set_device(name, directory=directory, build_on_run=build_on_run, **build_options)
    device = b2.get_device()
    if name == "cpp_standalone":
        reserve_spike_queues(device)
    try:
        yield directory
    finally:
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = old_make_args
        device.__dict__.pop("copy_source_files", None)
        b2.device.reinit()
        b2.device.activate()
        b2.set_device("runtime")
        b2.prefs.codegen.target = old_target
        if tmp is not None:
            tmp.cleanup()
