"""GPU builds with brian2cuda's ``cuda_standalone`` device, and the C++17 override they need.

brian2cuda (an optional dependency: Python 3.12, brian2 2.10.1, a CUDA toolkit and a GPU) turns a
Brian2 network into one CUDA program, as ``cpp_standalone`` does for C++. :func:`use_cuda_standalone`
selects it for one build-and-run, as :func:`.targets.use_target` does for the other targets.

Why the override
----------------
CUDA 13 ships Thrust/CUB as part of CCCL, which refuses to compile below C++17 ("Thrust requires
at least C++17"). Two places still ask for C++11, and both end up on the ``nvcc`` command line of
the generated ``makefile``:

* Brian2's default host-compiler flags, ``prefs.codegen.cpp.extra_compile_args_gcc``
  (``[..., '-std=c++11']`` in brian2 2.9/2.10, ``brian2/codegen/cpp_prefs.py``); brian2cuda's
  ``CUDAStandaloneDevice.build`` reads them through ``get_compiler_and_args()`` and passes them to
  the makefile template as ``cpp_compiler_flags``;
* brian2cuda's makefile template (``brian2cuda/templates/makefile``), rendered by
  ``CUDAStandaloneDevice.generate_makefile`` through ``CUDAStandaloneCodeObject.templater``, a
  Brian2 ``Templater`` whose jinja2 ``Environment`` loads ``brian2cuda/templates`` with a
  ``ChoiceLoader([PackageLoader('brian2cuda', 'templates')])``.

:func:`apply_cxx17` rewrites ``-std=c++11`` / ``-std=c++14`` (and ``gnu++``) to ``-std=c++17`` in
the flag preferences (also ``codegen.cpp.extra_compile_args`` when set, and brian2cuda's
``devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc``), and wraps the templater's jinja2
loader so that the makefile's source is rewritten the same way when it is loaded. Nothing in
site-packages is edited; applying it twice changes nothing. With it, a batched SC-TTFS network
built with CUDA 13 gave spike counts identical to the CPU run (measured by the project).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import brian2 as b2
import jinja2

from .standalone import standalone_device

__all__ = [
    "NOT_INSTALLED",
    "cuda_available",
    "cxx17_flags",
    "cxx17_source",
    "DialectLoader",
    "rewrite_template_dialect",
    "apply_cxx17",
    "restore_flags",
    "use_cuda_standalone",
]

#: Why ``cuda_standalone`` is unavailable when brian2cuda cannot be imported.
NOT_INSTALLED = "brian2cuda is not installed: it needs Python 3.12 and brian2 2.10.1; see README 'Scaling up'"
#: Flag preferences that may carry a ``-std=`` flag down to the nvcc command line.
FLAG_PREFS = (
    "codegen.cpp.extra_compile_args_gcc",
    "codegen.cpp.extra_compile_args",
    "devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc",
)

# -std=c++11, --std=c++14, -std=gnu++0x, ... (older dialects only: c++17/c++20 are left alone)
_OLD_DIALECT = re.compile(r"(?<![\w-])(--?std=)(c|gnu)\+\+(0x|11|1y|14)(?![\w+])")


def cxx17_flags(flags: list[str] | tuple[str, ...]) -> list[str]:
    """``flags`` with every C++11/14 dialect flag replaced by its C++17 form (a new list)."""
    return [cxx17_source(flag) for flag in flags]


def cxx17_source(text: str) -> str:
    """``text`` (a flag or a makefile's source) with ``-std=c++11``/``c++14`` made ``-std=c++17``."""
    return _OLD_DIALECT.sub(lambda m: f"{m.group(1)}{m.group(2)}++17", text)


def _is_makefile(name: str) -> bool:
    return "makefile" in os.path.basename(name).lower()


class DialectLoader(jinja2.BaseLoader):
    """A jinja2 loader that delegates to ``wrapped`` and rewrites the dialect flags
    (:func:`cxx17_source`) of the template sources ``match`` selects by name."""

    has_source_access = True

    def __init__(self, wrapped: jinja2.BaseLoader, match: Callable[[str], bool]):
        self.wrapped = wrapped
        self.match = match

    def get_source(self, environment, template):
        source, filename, uptodate = self.wrapped.get_source(environment, template)
        if self.match(template):
            source = cxx17_source(source)
        return source, filename, uptodate

    def list_templates(self):
        return self.wrapped.list_templates()


def rewrite_template_dialect(env: Any, match: Callable[[str], bool] = _is_makefile) -> bool:
    """Wrap the loader of the jinja2 ``env`` so that the templates ``match`` selects (default:
    the makefiles) load with ``-std=c++17``. Returns ``False`` when it was wrapped already.

    Templates compiled before the wrap stay in jinja2's cache under the old loader; the cache is
    keyed by loader, so the next ``get_template`` loads through the new one."""
    if isinstance(env.loader, DialectLoader):
        return False
    env.loader = DialectLoader(env.loader, match)
    return True


def _templater(device: Any):
    code_object_class = getattr(device, "code_object_class", None)
    if code_object_class is None:
        return None
    try:
        return getattr(code_object_class(), "templater", None)
    except Exception:  # a device without a default code object class has no templates to fix
        return None


def apply_cxx17(device: Any = None) -> dict[str, list[str]]:
    """Make a ``cuda_standalone`` build compile as C++17 (see the module docstring for why).

    Rewrites the dialect in the flag preferences :data:`FLAG_PREFS` that exist and are set, and
    wraps the jinja2 loader of ``device``'s templater (default: the current Brian2 device) so its
    makefile template renders with ``-std=c++17``; a makefile already loaded by the templater is
    dropped from its cache so the next build reloads it. Idempotent.

    Returns
    -------
    dict
        ``{preference name: previous value}`` for the preferences it changed, for
        :func:`restore_flags`.
    """
    previous = {}
    for name in FLAG_PREFS:
        try:
            value = b2.prefs[name]
        except KeyError:  # brian2cuda's preferences exist only once it is imported
            continue
        if not isinstance(value, (list, tuple)):
            continue
        new = cxx17_flags(value)
        if new != list(value):
            previous[name] = list(value)
            b2.prefs[name] = new
    templater = _templater(device if device is not None else b2.get_device())
    env = getattr(templater, "env", None)
    if env is not None and rewrite_template_dialect(env):
        cached = getattr(getattr(templater, "templates", None), "_templates", None)
        if isinstance(cached, dict):
            for name in [n for n in cached if _is_makefile(n)]:
                del cached[name]
    return previous


def restore_flags(previous: dict[str, list[str]]) -> None:
    """Put back the preference values :func:`apply_cxx17` returned (the loader wrap stays: it only
    affects brian2cuda's makefile)."""
    for name, value in previous.items():
        b2.prefs[name] = value


def _nvcc() -> str | None:
    try:
        from brian2cuda.utils.gputools import get_nvcc_path

        return get_nvcc_path()
    except Exception:  # brian2cuda raises when it finds no CUDA installation
        pass
    for candidate in (
        shutil.which("nvcc"),
        os.path.join(os.environ.get("CUDA_PATH", ""), "bin", "nvcc") if os.environ.get("CUDA_PATH") else None,
        "/usr/local/cuda/bin/nvcc",
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _gpu() -> str | None:
    """The first GPU ``nvidia-smi -L`` lists, or ``None``."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((line.strip() for line in out.splitlines() if line.startswith("GPU")), None)


def cuda_available() -> tuple[bool, str]:
    """Whether ``cuda_standalone`` can build here: ``(True, description)`` or ``(False, reason)``.

    Checks, in order, that brian2cuda imports, that ``nvcc`` is found (brian2cuda's own lookup,
    then ``PATH``, ``$CUDA_PATH/bin``, ``/usr/local/cuda/bin``) and that ``nvidia-smi`` lists a GPU.
    """
    if importlib.util.find_spec("brian2cuda") is None:
        return False, NOT_INSTALLED
    try:
        brian2cuda = importlib.import_module("brian2cuda")
    except Exception as exc:  # e.g. a brian2 version it does not support
        return False, (
            f"brian2cuda is installed but does not import ({type(exc).__name__}: {exc}); it needs "
            f"Python 3.12 and brian2 2.10.1 (this is brian2 {b2.__version__}); see README 'Scaling up'"
        )
    nvcc = _nvcc()
    if nvcc is None:
        return (
            False,
            "brian2cuda is installed but nvcc was not found (not on PATH, $CUDA_PATH/bin or /usr/local/cuda/bin)",
        )
    gpu = _gpu()
    if gpu is None:
        return False, "brian2cuda and nvcc are installed but nvidia-smi lists no CUDA GPU"
    return True, f"brian2cuda {getattr(brian2cuda, '__version__', '?')}, nvcc {nvcc}, {gpu}"


@contextlib.contextmanager
def use_cuda_standalone(directory: str | None = None, **build_options: Any) -> Iterator[str]:
    """Run the enclosed Brian2 build on the GPU with brian2cuda; yields the build directory.

    Mirrors :func:`.targets.use_target` for ``cpp_standalone``: the enclosed code must call
    ``net.run`` once, which generates, compiles (C++17, :func:`apply_cxx17`) and runs the CUDA
    program. Afterwards runtime mode is restored (``device.reinit()``, ``device.activate()``,
    ``set_device('runtime')``) and so are the flag preferences, so CPU builds are unaffected.
    ``build_options`` go to ``set_device`` (e.g. ``with_output=True``).

    Raises
    ------
    RuntimeError
        When :func:`cuda_available` says no, with its reason.
    """
    ok, reason = cuda_available()
    if not ok:
        raise RuntimeError(f"the cuda_standalone target is unavailable: {reason}")
    with standalone_device("cuda_standalone", directory, prefix="scttfs_cuda_", **build_options) as built_in:
        previous = apply_cxx17(b2.get_device())
        try:
            yield built_in
        finally:
            restore_flags(previous)
