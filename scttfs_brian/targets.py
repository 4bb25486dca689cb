"""Brian2 code-generation targets: runtime (``numpy``, ``cython``) and ``cpp_standalone``.

One context manager selects the target for a build-and-run and restores the previous state, so
that a standalone build inside a session leaves runtime mode usable afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import brian2 as b2

RUNTIME_TARGETS = ("numpy", "cython")
STANDALONE_TARGETS = ("cpp_standalone", "cuda_standalone")
TARGETS = RUNTIME_TARGETS + STANDALONE_TARGETS


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(
            f"target must be one of {', '.join(TARGETS)} (got {target!r}); 'numpy' needs no compiler, "
            "'cython' compiles once and caches, 'cpp_standalone' builds one C++ program per network, "
            "'cuda_standalone' one CUDA program (needs brian2cuda and a GPU)"
        )
    return target


@contextlib.contextmanager
def use_target(target: str = "numpy", directory: str | None = None) -> Iterator[str | None]:
    """Run the enclosed Brian2 build with ``target``; yields the standalone build directory
    (``None`` in runtime mode). For ``cpp_standalone`` the enclosed code must call ``net.run``
    once; the program is compiled and executed at that call (``build_on_run``)."""
    check_target(target)
    if target == "cuda_standalone":
        from .cuda import use_cuda_standalone

        with use_cuda_standalone(directory) as d:
            yield d
        return
    old_target = b2.prefs.codegen.target
    if target in RUNTIME_TARGETS:
        b2.prefs.codegen.target = target
        try:
            yield None
        finally:
            b2.prefs.codegen.target = old_target
        return
    with standalone_device("cpp_standalone", directory) as built_in:
        yield built_in


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


@contextlib.contextmanager
def standalone_device(
    name: str, directory: str | None = None, *, prefix: str = "scttfs_standalone_", **build_options
) -> Iterator[str]:
    """``set_device(name, build_on_run=True)`` for the enclosed build; yields the build
    directory (a temporary one unless given). Afterwards runtime mode is restored
    (``device.reinit()``, ``device.activate()``, ``set_device('runtime')``) so that later
    builds in the same process work."""
    old_target = b2.prefs.codegen.target
    old_make_args = b2.prefs.devices.cpp_standalone.extra_make_args_unix
    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        directory = tmp.name
    build_options.setdefault("with_output", False)
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = make_args(old_make_args)
    b2.set_device(name, directory=directory, build_on_run=True, **build_options)
    try:
        yield directory
    finally:
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = old_make_args
        b2.device.reinit()
        b2.device.activate()
        b2.set_device("runtime")
        b2.prefs.codegen.target = old_target
        if tmp is not None:
            tmp.cleanup()
