"""Brian2 code-generation targets: runtime (``numpy``, ``cython``), ``cpp_standalone`` and
``cuda_standalone``.

One context manager selects the target for a build-and-run and restores the previous state, so
that a standalone build inside a session leaves runtime mode usable afterwards. The arrows point
one way: this module imports :mod:`.standalone` and :mod:`.cuda`; :mod:`.cuda` imports
:mod:`.standalone`; neither imports this one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import brian2 as b2

from .cuda import use_cuda_standalone
from .standalone import standalone_device

__all__ = ["RUNTIME_TARGETS", "STANDALONE_TARGETS", "TARGETS", "check_target", "use_target"]

RUNTIME_TARGETS = ("numpy", "cython")
STANDALONE_TARGETS = ("cpp_standalone", "cuda_standalone")
TARGETS = RUNTIME_TARGETS + STANDALONE_TARGETS


def check_target(target: str) -> str:
    """``target`` if it is one of :data:`TARGETS`; otherwise a ``ValueError`` that says what each
    target needs."""
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
