"""Converted networks: Brian2 and the torch twin agree spike for spike (SPEC section 2)."""

import numpy as np
import pytest
import torch
from torch import nn

from scttfs_brian import SCTTFSCode, ThresholdKernel, TTFSCode, convert
from scttfs_brian.brian import BuildTooLarge, estimate_memory
from scttfs_brian.brian import simulate as brian_simulate
from scttfs_brian.models import randomize_batchnorm

torch.set_default_dtype(torch.float32)

def assert_same_spikes(a, b):
    """``a`` and ``b`` spike for spike (every recorded ``t_enc``/``t_cal``, every count) with the
    same predictions: :meth:`SimulationResult.compare`, the one comparison of the project."""
    agreement = a.compare(b)
    assert agreement.exact, str(agreement)
    return agreement



def _randomize_bn(model, seed):
    return randomize_batchnorm(model, seed, affine=True)


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=True), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.block1 = Block(4, 4, 1)  # identity shortcut
        self.block2 = Block(4, 8, 2)  # 1x1 conv + BN projection shortcut
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


MODELS = {"mlp": mlp, "cnn": cnn, "resnet": SmallResNet}


def _inputs(n, seed):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _convert(name, T=4, kind="sc-ttfs", seed=0):
    torch.manual_seed(seed)
    model = _randomize_bn(MODELS[name](), seed)
    return model, convert(model, (1, 8, 8), code="auto", calibration_data=_inputs(64, seed + 1), T=T, kind=kind)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("kind", ["sc-ttfs", "ttfs"])
def test_brian2_and_torch_twin_agree_spike_for_spike(name, kind):
    _, snn = _convert(name, kind=kind)
    x = _inputs(120, 7)
    res_b = snn.simulate(x, backend="brian2", record=True, copies=16, progress=False)
    res_t = snn.simulate(x, backend="torch", record=True)
    populations = [l.name for l in snn.graph.spiking_layers]
    assert set(res_b.spike_times) == set(res_t.spike_times) == set(populations)
    agreement = assert_same_spikes(res_b, res_t)
    assert set(agreement.timed_layers) == set(populations)
    n_neurons = sum(res_b.spike_times[layer][0][0].size for layer in populations)
    np.testing.assert_allclose(res_b.outputs, res_t.outputs, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res_b.predictions, res_t.predictions)
    assert res_b.latency_steps == res_t.latency_steps == snn.graph.n_windows * 4
    # the kernels make both spikes common, so the comparison is not vacuous
    enc = sum(c[:, 0].sum() for c in res_b.spike_counts.values())
    cal = sum(c[:, 1].sum() for c in res_b.spike_counts.values())
    assert enc > 0.2 * 120 * n_neurons * 0.5
    if kind == "sc-ttfs":
        assert cal > 0.2 * enc
    else:
        assert cal == 0


def test_residual_shortcuts_are_delayed_one_window():
    _, snn = _convert("resnet")
    g = snn.graph
    two = [l for l in g.layers if len(l.inputs) == 2]
    assert len(two) == 2
    for layer in two:
        assert sorted(p.delay_windows for p in layer.inputs) == [0, 1]
    assert g.latency_steps == g.n_windows * g.T == 5 * 4  # stem + 2 blocks x 2 spiking layers


def test_input_encoding_layer_agrees_too():
    torch.manual_seed(3)
    model = _randomize_bn(cnn(), 3)
    code = SCTTFSCode(4, ThresholdKernel(0.6, 0.0, 0.6), ThresholdKernel(0.3, 0.0, 0.6))
    snn = convert(model, (1, 8, 8), code="auto", calibration_data=_inputs(64, 4), T=4, input_code=code)
    x = _inputs(100, 5)
    rb = snn.simulate(x, backend="brian2", record=["input"], copies=25, progress=False)
    rt = snn.simulate(x, backend="torch", record=["input"])
    assert_same_spikes(rb, rt)
    np.testing.assert_array_equal(rb.predictions, rt.predictions)
    np.testing.assert_allclose(rb.outputs, rt.outputs, atol=1e-9, rtol=0)
    assert rb.latency_steps == (snn.graph.n_windows) * 4 and snn.graph.windows["input"] == 0


def test_chunked_runs_equal_one_run():
    _, snn = _convert("mlp")
    x = _inputs(100, 11)
    one = snn.simulate(x, copies=10, progress=False)
    chunked = snn.simulate(x, copies=10, images_per_run=30, progress=False)
    np.testing.assert_array_equal(one.outputs, chunked.outputs)
    for k in one.spike_counts:
        np.testing.assert_array_equal(one.spike_counts[k], chunked.spike_counts[k])


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_snn_approaches_ann_as_T_grows(name):
    model, _ = _convert(name)
    x = _inputs(200, 9)
    with torch.no_grad():
        ann = model.double()(x.double()).numpy()
    errors, agree = [], []
    for T in (2, 4, 8, 16):
        snn = convert(model, (1, 8, 8), code="auto", calibration_data=_inputs(256, 1), T=T)
        out = snn.simulate(x, backend="torch").outputs
        errors.append(np.abs(out - ann).mean() / np.abs(ann).mean())
        agree.append(np.mean(out.argmax(1) == ann.argmax(1)))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05 and agree[-1] >= 0.95, (errors, agree)


def test_memory_estimate_refuses_oversized_builds():
    _, snn = _convert("cnn")
    need = estimate_memory(snn.graph, copies=50)
    with pytest.raises(BuildTooLarge, match=r"needs about .* GiB .* use copies=\d+ or fewer"):
        brian_simulate(snn.graph, _inputs(100, 0), copies=50, memory_limit=need // 3, progress=False)


def test_bad_inputs_are_refused_with_a_clear_message():
    _, snn = _convert("mlp")
    with pytest.raises(ValueError, match=r"x must have shape \(n_inputs, 1, 8, 8\) \(got \(3, 64\)\)"):
        snn.simulate(torch.rand(3, 64), progress=False)
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, 1, 8, 8\)"):
        snn.functional(torch.rand(3, 64))
    with pytest.raises(ValueError, match="x must be finite"):
        snn.simulate(torch.full((2, 1, 8, 8), float("nan")), progress=False)
    with pytest.raises(ValueError, match="backend must be 'brian2' or 'torch'"):
        snn.simulate(_inputs(2, 0), backend="nest")
    with pytest.raises(ValueError, match="cannot record"):
        snn.simulate(_inputs(2, 0), record=["nope"], progress=False)
    code = SCTTFSCode(4, ThresholdKernel(1.0, 0.0, 0.5), ThresholdKernel(0.5, 0.0, 0.5))
    enc_snn = convert(mlp().eval(), (1, 8, 8), code=code, input_code=code)
    neg = _inputs(2, 0) - 0.5
    with pytest.raises(ValueError, match="must be >= 0 when the input is SC-TTFS-encoded"):
        enc_snn.simulate(neg, progress=False)
    with pytest.raises(ValueError, match="must be >= 0 when the input is SC-TTFS-encoded"):
        enc_snn.functional(neg)


def test_unsupported_modules_and_nan_weights_are_refused():
    with pytest.raises(ValueError, match=r"MaxPool2d at '1'.*AvgPool2d"):
        convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)).eval(),
                (1, 8, 8), code=TTFSCode(4, ThresholdKernel(1, 0, 0.5)))  # fmt: skip
    bad = mlp().eval()
    bad[1].weight.data[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite"):
        convert(bad, (1, 8, 8), code=TTFSCode(4, ThresholdKernel(1, 0, 0.5)))


def test_record_selected_neurons_only():
    _, snn = _convert("mlp")
    x = _inputs(20, 1)
    layer = snn.graph.spiking_layers[0].name
    rb = snn.simulate(x, record={layer: [0, 5, 7]}, copies=4, progress=False)
    rt = snn.simulate(x, backend="torch", record=True)
    assert list(rb.spike_times) == [layer] and rb.spike_times[layer][0].shape == (20, 3)
    for a, b in zip(rb.spike_times[layer], rt.spike_times[layer]):
        np.testing.assert_array_equal(a, b.reshape(20, -1)[:, [0, 5, 7]])
    with pytest.raises(ValueError, match=r"neuron indices for .* must lie in \[0, 47\]"):
        snn.simulate(x, record={layer: [48]}, progress=False)


@pytest.mark.slow
@pytest.mark.standalone
def test_cpp_standalone_network_equals_torch_twin():
    """All inputs in one compiled run (inputs from a 2-D TimedArray), spike for spike."""
    _, snn = _convert("mlp")
    x = _inputs(100, 7)
    rs = snn.simulate(x, target="cpp_standalone", record=True, copies=10, progress=False)
    rt = snn.simulate(x, backend="torch", record=True)
    assert_same_spikes(rs, rt)
    np.testing.assert_allclose(rs.outputs, rt.outputs, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(rs.predictions, rt.predictions)


@pytest.mark.standalone
def test_small_cpp_standalone_network_equals_torch_twin():
    """The one network-level cpp_standalone test CI runs (not slow): a tiny MLP, a few inputs
    in one compiled program (generated connectivity, 3 copies, a padded last slot), spike for
    spike equal to the torch engine."""
    _, snn = _convert("mlp")
    x = _inputs(8, 5)
    rs = snn.simulate(x, target="cpp_standalone", record=True, copies=3, progress=False)
    rt = snn.simulate(x, backend="torch", record=True)
    assert set(rs.spike_times) == set(rt.spike_times)
    assert_same_spikes(rs, rt)
    assert sum(c.sum() for c in rs.spike_counts.values()) > 0
    np.testing.assert_allclose(rs.outputs, rt.outputs, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(rs.predictions, rt.predictions)


def test_results_are_collected_from_plain_arrays_by_slot_and_copy():
    """The one collection path of runtime runs and compiled programs, without a simulation: a
    spike in window ``w`` of neuron ``c * n + k`` is neuron ``k`` of input ``(w - w_l) * copies
    + c``; padding copies, windows after the last slot and the pipeline filling up are dropped."""
    import brian2 as b2

    from scttfs_brian.brian.collect import Events, Recorded, collect

    _, snn = _convert("mlp")
    g = snn.graph
    T, B, slots, n_inputs = g.T, 2, 2, 3
    name, n = g.layers[1].name, g.layers[1].size
    w, w_out, n_out = g.windows[name], g.windows[g.output.name], g.output.size

    def events(cases):  # (neuron index, window, step) -> Events, times in seconds (dt = 1 ms)
        i, window, step = np.array(cases, dtype=np.int64).reshape(-1, 3).T
        return Events(i, (window * T + step) * 1e-3)

    # input 2 neuron 5 (slot 1, copy 0); a padding copy (input 3); after the last slot; filling up
    spikes = events([(5, w + 1, 2), (n + 5, w + 1, 1), (7, w + 2, 0), (3, w - 1, 3)])
    calibrations = events([(n + 1, w, 3)])  # input 1 (slot 0, copy 1), neuron 1
    v = np.zeros((B * n_out, slots + w_out + 1))
    for s in range(slots):
        for c in range(B):
            v[c * n_out : (c + 1) * n_out, w_out + 1 + s] = 100 * s + 10 * c + np.arange(n_out)
    quiet = (events([]), events([]))
    recorded = Recorded(v, {g.layers[0].name: quiet, name: (spikes, calibrations)}, copies=B)
    piece = collect(g, recorded, n_inputs, slots, 1 * b2.ms, g.recording(True))
    for image, (s, c) in enumerate([(0, 0), (0, 1), (1, 0)]):
        np.testing.assert_array_equal(piece.outputs[image], 100 * s + 10 * c + np.arange(n_out))
    np.testing.assert_array_equal(piece.counts[name], [[0, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(piece.counts[g.layers[0].name], np.zeros((3, 2)))
    t_enc, t_cal = piece.times[name]
    assert t_enc.shape == (3, n) and t_enc[2, 5] == 2 and (t_enc >= 0).sum() == 1
    assert t_cal[1, 1] == 3 and (t_cal >= 0).sum() == 1


def test_shared_weights_give_identical_results():
    _, snn = _convert("cnn")
    x = _inputs(40, 2)
    plain = snn.simulate(x, copies=8, record=True, progress=False)
    shared = snn.simulate(x, copies=8, record=True, shared_weights=True, progress=False)
    np.testing.assert_array_equal(plain.outputs, shared.outputs)
    assert_same_spikes(plain, shared)


@pytest.mark.parametrize("name", list(MODELS))
def test_generated_connectivity_equals_index_arrays(name):
    """Synapses created by Brian2's generated code from the kernel geometry are the index
    arrays' synapses, with the same weights, in every copy."""
    import brian2 as b2

    from scttfs_brian.brian import build_network, use_target

    _, snn = _convert(name)
    with use_target("numpy"):
        arrays = build_network(snn.graph, 3, 1 * b2.ms, shared_weights=False, generated=False)
        generated = build_network(snn.graph, 3, 1 * b2.ms, shared_weights=True, generated=True)
    syn_a = {o.name: o for o in arrays.net.objects if isinstance(o, b2.Synapses)}
    syn_g = {o.name: o for o in generated.net.objects if isinstance(o, b2.Synapses)}
    assert set(syn_a) == set(syn_g) and syn_a
    n = 0
    for key, S in syn_a.items():
        a = sorted(zip(S.i[:], S.j[:], S.w[:]))
        g = sorted(zip(syn_g[key].i[:], syn_g[key].j[:], syn_g[key].w[:]))
        assert a == g, key
        n += len(a)
    from scttfs_brian.brian import synapses_per_copy

    assert n == 3 * synapses_per_copy(snn.graph)


def test_generated_connectivity_runs_spike_exact_and_checks_its_options():
    _, snn = _convert("cnn")
    x = _inputs(24, 3)
    rg = snn.simulate(x, copies=8, record=True, connectivity="generated", progress=False)
    rt = snn.simulate(x, backend="torch", record=True)
    assert_same_spikes(rg, rt)
    np.testing.assert_allclose(rg.outputs, rt.outputs, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="connectivity must be 'auto', 'arrays' or 'generated'"):
        snn.simulate(x, connectivity="lazy", progress=False)
    with pytest.raises(ValueError, match="needs shared_weights=True"):
        snn.simulate(x, connectivity="generated", shared_weights=False, progress=False)


@pytest.mark.slow
@pytest.mark.standalone
@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_cpp_standalone_generated_connectivity_equals_torch_twin(name):
    """cpp_standalone with its default generated connectivity (pooled convs, strided convs,
    residual shortcuts), spike for spike; the program's timings and peak memory are reported."""
    _, snn = _convert(name)
    x = _inputs(40, 7)
    rs = snn.simulate(x, target="cpp_standalone", record=True, copies=8, progress=False)
    rt = snn.simulate(x, backend="torch", record=True)
    assert_same_spikes(rs, rt)
    np.testing.assert_allclose(rs.outputs, rt.outputs, atol=1e-9, rtol=0)
    assert set(rs.timings) >= {"build", "codegen", "compile", "setup", "run"}
    assert 1e6 < rs.memory["program_peak_rss_bytes"] < 4e9


def test_program_wrapper_records_time_memory_and_exit_status(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "usage.json"
    cmd = [sys.executable, "-m", "scttfs_brian.brian.usage", str(out), sys.executable, "-c",
           "import sys; b = bytearray(64 * 2**20); sys.exit(3)"]  # fmt: skip
    assert subprocess.call(cmd) == 3
    usage = json.loads(out.read_text())
    assert usage["returncode"] == 3 and usage["wall_s"] > 0
    assert usage["peak_rss_bytes"] > 64 * 2**20


def test_standalone_builds_bound_make_parallelism():
    """A bare ``-j`` (Brian2's default) would start one compiler per code object at once."""
    import os

    from scttfs_brian.brian.devices import make_args

    assert make_args(["-j"]) == ["-j", str(os.cpu_count())]
    assert make_args(["-j", "3"]) == ["-j", "3"]
    assert make_args(["-j", "-k"]) == ["-j", str(os.cpu_count()), "-k"]
    assert make_args([]) == []


def test_spike_queue_lists_are_reserved_exactly_in_standalone_projects(tmp_path):
    """The override of Brian2's spike queue source applies to the installed Brian2 (its fill
    loop is found), keeps the loop, and is written into the project; another source warns."""
    import inspect
    import os
    import types

    from brian2.synapses.synapses import Synapses

    from scttfs_brian.brian.devices import reserve_spike_queue_source, reserve_spike_queues

    with open(os.path.join(os.path.dirname(inspect.getsourcefile(Synapses)), "cspikequeue.cpp")) as f:
        source = f.read()
    patched = reserve_spike_queue_source(source)
    assert patched.count("synapses[s].reserve(_counts[s]);") == 1
    j = source.index("        for (int i=0; i<n_synapses; i++)\n            synapses[sources[i]")
    assert patched[:j] == source[:j] and patched.endswith(source[j:])  # only inserted, before the loop

    def copy(writer, directory, text=source):
        os.makedirs(os.path.join(directory, "brianlib"), exist_ok=True)
        with open(os.path.join(directory, "brianlib", "spikequeue.h"), "w") as f:
            f.write(text)

    device = types.SimpleNamespace(copy_source_files=copy)
    reserve_spike_queues(device)
    device.copy_source_files(None, str(tmp_path))
    assert "reserve(_counts[s])" in (tmp_path / "brianlib" / "spikequeue.h").read_text()
    device = types.SimpleNamespace(copy_source_files=lambda w, d: copy(w, d, "other queue"))
    reserve_spike_queues(device)
    with pytest.warns(UserWarning, match="fill loop of Brian2's spike queue was not found"):
        device.copy_source_files(None, str(tmp_path))
    assert (tmp_path / "brianlib" / "spikequeue.h").read_text() == "other queue"


@pytest.mark.slow
@pytest.mark.standalone
def test_compiled_program_runs_many_batches_without_recompiling(tmp_path):
    """compile_program: one build and compilation, then each batch is a run of the same program
    with a new input table (encoded input layer included); spike for spike equal to the twin."""
    import os


    torch.manual_seed(3)
    model = _randomize_bn(cnn(), 3)
    code = SCTTFSCode(4, ThresholdKernel(0.6, 0.0, 0.6), ThresholdKernel(0.3, 0.0, 0.6))
    snn = convert(model, (1, 8, 8), code="auto", calibration_data=_inputs(64, 4), T=4, input_code=code)
    with snn.compile(16, copies=8) as prog:
        assert set(prog.build_timings) == {"build", "compile"}
        main = os.path.join(prog.directory, "main")
        built_at = os.path.getmtime(main)
        for seed, n in ((7, 37), (8, 5)):
            x = _inputs(n, seed)
            rs = prog.simulate(x, record=True, progress=False)
            rt = snn.simulate(x, backend="torch", record=True)
            assert_same_spikes(rs, rt)
            np.testing.assert_allclose(rs.outputs, rt.outputs, atol=1e-9, rtol=0)
            for layer in rt.spike_counts:
                np.testing.assert_array_equal(rs.spike_counts[layer], rt.spike_counts[layer])
        assert prog.runs == 3 + 1 and os.path.getmtime(main) == built_at  # never rebuilt
        directory = prog.directory
    assert not os.path.exists(directory)
    with pytest.raises(RuntimeError, match="closed"):
        prog.simulate(_inputs(2, 1), progress=False)


def test_compile_program_checks_its_arguments():
    from scttfs_brian.brian import compile_program

    _, snn = _convert("mlp")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        compile_program(snn.graph, 0)
    with pytest.raises(ValueError, match="connectivity must be 'arrays' or 'generated'"):
        compile_program(snn.graph, 4, connectivity="auto")
    with pytest.raises(BuildTooLarge, match="does not fit even as a single copy"):
        compile_program(snn.graph, 4, memory_limit=1)


class LongShortcut(nn.Module):
    """A residual addition whose shortcut skips two spiking layers (delayed by two windows)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 64, 10)

    def forward(self, x):
        x0 = self.stem(x)
        return self.fc(torch.flatten(self.relu(self.c(self.b(self.a(x0))) + x0), 1))


def test_shortcut_over_two_spiking_layers_agrees_spike_for_spike():
    torch.manual_seed(11)
    snn = convert(LongShortcut().eval(), (1, 8, 8), code="auto", calibration_data=_inputs(64, 12), T=3)
    delays = [p.delay_windows for layer in snn.graph.layers for p in layer.inputs]
    assert max(delays) == 2  # the shortcut waits two windows for the main branch
    x = _inputs(30, 13)
    assert_same_spikes(
        snn.simulate(x, backend="brian2", record=True, copies=8, progress=False),
        snn.simulate(x, backend="torch", record=True),
    )


@pytest.mark.parametrize(
    "T, copies, n_inputs",
    [(1, 4, 12), (3, 1, 5), (3, 50, 7)],
    ids=["T=1", "copies=1", "copies>inputs"],
)
def test_window_and_copies_edge_cases_agree_spike_for_spike(T, copies, n_inputs):
    _, snn = _convert("cnn", T=T)
    x = _inputs(n_inputs, 21)
    rb = snn.simulate(x, backend="brian2", record=True, copies=copies, progress=False)
    rt = snn.simulate(x, backend="torch", record=True)
    assert_same_spikes(rb, rt)
    assert rb.latency_steps == snn.graph.n_windows * T and len(rb.predictions) == n_inputs


def test_torch_engine_chunked_batches_equal_one_batch():
    """``batch_size`` smaller than the batch (the chunked path) changes nothing."""
    _, snn = _convert("resnet")
    x = _inputs(23, 4)
    one = snn.simulate(x, backend="torch", record=True, batch_size=256)
    chunked = snn.simulate(x, backend="torch", record=True, batch_size=5)
    assert_same_spikes(one, chunked)
    np.testing.assert_array_equal(one.outputs, chunked.outputs)
