"""The brian2cuda (``cuda_standalone``) support: the C++17 override without brian2cuda, and a
GPU build against the numpy target where brian2cuda and a GPU are there."""

import brian2 as b2
import jinja2
import numpy as np
import pytest
import torch
from brian2.codegen.templates import LazyTemplateLoader, Templater
from brian2.devices.device import all_devices
from torch import nn

from scttfs_brian.brian.devices import cuda

GCC = "codegen.cpp.extra_compile_args_gcc"
AVAILABLE, REASON = cuda.cuda_available()

#: A makefile template with the variables brian2cuda's ``generate_makefile`` passes (source_files,
#: nvcc_path, gpu_arch_flags, nvcc_compiler_flags, cpp_compiler_flags, ...): the dialect written
#: into the template itself (as the project found in brian2cuda's), Brian2's gcc flags arriving
#: through ``cpp_compiler_flags``.
MAKEFILE = """PROGRAM = main
SRCS = {{ source_files }}
NVCC = @{{ nvcc_path }}
NVCCFLAGS = -I. -std=c++11 {{ gpu_arch_flags }} {{ nvcc_compiler_flags }} -Xcompiler "{{ cpp_compiler_flags }}"
"""
MAKEFILE_ARGS = dict(
    source_files="main.cu", nvcc_path="/usr/local/cuda/bin/nvcc", gpu_arch_flags="-arch=sm_90",
    nvcc_compiler_flags="-w -use_fast_math", cpp_compiler_flags="-w -O3 -std=c++11",
)  # fmt: skip
KERNEL = "// kernels are compiled with -std=c++11 too, but only makefiles are rewritten\n"


@pytest.fixture
def saved_prefs():
    """Brian2's real flag preferences, put back after the test."""
    saved = {name: b2.prefs[name] for name in (GCC, "codegen.cpp.extra_compile_args")}
    yield saved
    for name, value in saved.items():
        b2.prefs[name] = value


def fake_templater():
    """A Brian2 ``Templater`` (as brian2cuda's ``CUDAStandaloneCodeObject`` holds one) whose
    jinja2 environment loads from a ``DictLoader`` instead of the brian2cuda package."""
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"makefile": MAKEFILE, "objects.cu": KERNEL}),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )  # fmt: skip
    templater = Templater.__new__(Templater)
    templater.env, templater.templates = env, LazyTemplateLoader(env, ".cu")
    return templater


class FakeDevice:
    def __init__(self, templater):
        self.templater = templater

    def code_object_class(self):
        return self  # has .templater, as a code object class does


def test_dialect_flags_become_cxx17_and_others_stay():
    flags = [
        "-w",
        "-O3",
        "-march=native",
        "-std=c++11",
        "--std=c++14",
        "-std=gnu++11",
        "-Xcompiler=-std=c++0x",
    ]
    assert cuda.cxx17_flags(flags) == [
        "-w", "-O3", "-march=native", "-std=c++17", "--std=c++17", "-std=gnu++17", "-Xcompiler=-std=c++17",
    ]  # fmt: skip
    assert cuda.cxx17_flags(["-std=c++17", "-std=c++20", "-std=c++110"]) == [
        "-std=c++17",
        "-std=c++20",
        "-std=c++110",
    ]


def test_gcc_prefs_are_rewritten_idempotently(saved_prefs):
    assert "-std=c++11" in saved_prefs[GCC]  # brian2 2.9's real default, what CUDA 13 refuses
    b2.prefs["codegen.cpp.extra_compile_args"] = ["-O2", "-std=c++14"]
    previous = cuda.apply_cxx17(FakeDevice(fake_templater()))
    assert previous == {GCC: saved_prefs[GCC], "codegen.cpp.extra_compile_args": ["-O2", "-std=c++14"]}
    assert b2.prefs[GCC] == [f.replace("c++11", "c++17") for f in saved_prefs[GCC]]
    assert b2.prefs["codegen.cpp.extra_compile_args"] == ["-O2", "-std=c++17"]
    from brian2.codegen.cpp_prefs import get_compiler_and_args

    assert "-std=c++17" in get_compiler_and_args()[1]  # what brian2cuda's build() passes on
    # again: nothing more to change
    assert cuda.apply_cxx17(FakeDevice(fake_templater())) == {}
    assert b2.prefs["codegen.cpp.extra_compile_args"] == ["-O2", "-std=c++17"]
    cuda.restore_flags(previous)
    assert b2.prefs[GCC] == saved_prefs[GCC]


def test_apply_leaves_a_device_without_templates_alone(saved_prefs):
    cuda.apply_cxx17(object())  # no code_object_class: only the preferences change
    assert "-std=c++17" in b2.prefs[GCC]


def test_makefile_template_renders_cxx17_through_the_wrapped_loader():
    templater = fake_templater()
    env = templater.env
    assert "-std=c++11" in env.get_template("makefile").render(**MAKEFILE_ARGS)
    assert cuda.rewrite_template_dialect(env) is True
    assert cuda.rewrite_template_dialect(env) is False  # idempotent: wrapped once
    assert env.loader.wrapped.__class__ is jinja2.DictLoader
    text = env.get_template("makefile").render(**MAKEFILE_ARGS)
    assert "NVCCFLAGS = -I. -std=c++17 -arch=sm_90 -w -use_fast_math" in text
    # only makefiles are rewritten; the flags passed in at render time are the preferences' job
    assert env.loader.get_source(env, "objects.cu")[0] == KERNEL
    assert '-Xcompiler "-w -O3 -std=c++11"' in text


def test_apply_rewrites_a_makefile_the_templater_had_already_loaded():
    templater = fake_templater()
    before = templater.makefile(None, None, **MAKEFILE_ARGS)  # the real Brian2 rendering path
    assert "-std=c++11" in before
    for _ in range(2):
        cuda.apply_cxx17(FakeDevice(templater))
        after = templater.makefile(None, None, **MAKEFILE_ARGS)
        assert "-I. -std=c++17 -arch=sm_90" in after
        assert after.count("c++17") == 1  # the template's flag; the passed-in flags are the prefs' job
    assert isinstance(templater.env.loader, cuda.DialectLoader)
    assert isinstance(templater.env.loader.wrapped, jinja2.DictLoader)  # not wrapped twice


@pytest.mark.skipif(AVAILABLE, reason="brian2cuda and a GPU are available here")
def test_unavailable_cuda_is_reported_with_a_clear_error():
    assert AVAILABLE is False and REASON
    if "not installed" in REASON:
        assert REASON == cuda.NOT_INSTALLED
        assert "Python 3.12" in REASON and "brian2 2.10.1" in REASON and "Scaling up" in REASON
    target = b2.get_device()
    with pytest.raises(RuntimeError, match="cuda_standalone target is unavailable") as info:
        with cuda.use_cuda_standalone():
            pytest.fail("the body must not run without brian2cuda")
    assert REASON in str(info.value)
    assert b2.get_device() is target  # nothing was switched


def _tiny_network():
    from scttfs_brian import PRESETS, SCTTFSCode, convert

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 16), nn.ReLU(),
        nn.Linear(16, 10),
    ).eval()  # fmt: skip
    return convert(model, (1, 8, 8), code=SCTTFSCode(4, *PRESETS["cifar10"]))


def _cuda_standalone_equals_numpy(monkeypatch, directory):
    """Simulate the tiny network with target 'cuda_standalone' (build in ``directory``) and with
    numpy; the spike counts must be equal and the CPU flags restored afterwards."""
    from scttfs_brian.brian import runtime, simulate

    # build in ``directory``: the target switch simulate() looks up, routed there for cuda_standalone
    real = runtime.use_target
    monkeypatch.setattr(
        runtime,
        "use_target",
        lambda t: cuda.use_cuda_standalone(str(directory)) if t == "cuda_standalone" else real(t),
    )
    flags_before = list(b2.prefs[GCC])
    snn = _tiny_network()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    gpu = simulate(snn.graph, x, target="cuda_standalone", copies=16, progress=False)
    cpu = simulate(snn.graph, x, target="numpy", copies=16, progress=False)
    assert set(gpu.spike_counts) == set(cpu.spike_counts)
    for name in cpu.spike_counts:
        np.testing.assert_array_equal(gpu.spike_counts[name], cpu.spike_counts[name], err_msg=name)
    assert sum(c.sum() for c in cpu.spike_counts.values()) > 0
    np.testing.assert_array_equal(gpu.predictions, cpu.predictions)
    makefile = (directory / "makefile").read_text()
    assert "-std=c++17" in makefile and "-std=c++11" not in makefile
    assert b2.prefs[GCC] == flags_before  # the CPU flags are back after the GPU build
    assert b2.get_device() is all_devices["runtime"]


@pytest.mark.gpu
@pytest.mark.skipif(not AVAILABLE, reason=REASON)
def test_cuda_standalone_spike_counts_equal_numpy(monkeypatch, tmp_path):
    _cuda_standalone_equals_numpy(monkeypatch, tmp_path)


@pytest.mark.slow
@pytest.mark.standalone
def test_use_cuda_standalone_switches_and_restores_with_a_stand_in_device(monkeypatch, tmp_path):
    """The context manager's plumbing on CPU: a cpp_standalone device registered under the name
    'cuda_standalone' builds the same network with the flags apply_cxx17 set."""
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    env = CPPStandaloneCodeObject.templater.env
    monkeypatch.setattr(env, "loader", env.loader)  # the wrap is undone after the test
    monkeypatch.setitem(all_devices, "cuda_standalone", CPPStandaloneDevice())
    monkeypatch.setattr(cuda, "cuda_available", lambda: (True, "stand-in: cpp_standalone"))
    _cuda_standalone_equals_numpy(monkeypatch, tmp_path)
    assert isinstance(env.loader, cuda.DialectLoader)
