"""SimulationResult: the spike-for-spike comparison (compare -> Agreement), select and save/load."""

import json

import numpy as np
import pytest

from scttfs_brian import SimulationResult
from scttfs_brian.results import Agreement


def make_result(n=4, backend="torch", seed=0, times=("conv1", "fc1")) -> SimulationResult:
    rng = np.random.default_rng(seed)
    shapes = {"input": (1, 3, 3), "conv1": (2, 2, 2), "fc1": (5,)}
    spike_times = {}
    counts = {}
    for name, shape in shapes.items():
        te = rng.integers(-1, 3, size=(n, *shape))
        tc = np.where(te >= 0, rng.integers(-1, 3, size=te.shape), -1)
        counts[name] = np.stack([(te >= 0).reshape(n, -1).sum(1), (tc >= 0).reshape(n, -1).sum(1)], axis=1)
        if name in times:
            spike_times[name] = (te, tc)
    outputs = rng.normal(size=(n, 3))
    return SimulationResult(
        outputs=outputs,
        predictions=outputs.argmax(1),
        spike_counts=counts,
        latency_steps=9,
        spike_times=spike_times,
        backend=backend,
        timings={"build": 0.5, "run": 1.25},
        memory={"program_peak_rss_bytes": 123456},
    )


def copy_of(res: SimulationResult, backend="brian2") -> SimulationResult:
    return SimulationResult(
        outputs=res.outputs + 1e-15,
        predictions=res.predictions.copy(),
        spike_counts={k: v.copy() for k, v in res.spike_counts.items()},
        latency_steps=res.latency_steps,
        spike_times={k: (a.copy(), b.copy()) for k, (a, b) in res.spike_times.items()},
        backend=backend,
    )


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------
def test_equal_results_agree_exactly():
    a = make_result(backend="brian2")
    b = copy_of(a, backend="torch")
    agreement = a.compare(b)
    assert isinstance(agreement, Agreement)
    assert agreement.exact and agreement.spikes_exact and agreement.predictions_exact
    assert agreement.inputs == 4 and agreement.prediction_agreement == 1.0
    assert set(agreement.layers) == {"input", "conv1", "fc1"} and agreement.unmatched == ()
    assert agreement.timed_layers == ["conv1", "fc1"]
    assert agreement.layers["conv1"].neurons == 8 and agreement.layers["input"].neurons is None
    assert 0 < agreement.max_output_difference < 1e-14  # rounding is reported, not part of exact
    assert str(agreement).startswith("exact (brian2 vs torch, 4 inputs, 3 populations)")


def test_one_changed_spike_time_is_a_mismatch_of_that_layer():
    a = make_result()
    b = copy_of(a)
    te, tc = b.spike_times["conv1"]
    tc[1, 0, 1, 1] = 2 if tc[1, 0, 1, 1] != 2 else 1  # a calibration spike moves: same counts or not
    agreement = a.compare(b)
    assert not agreement.exact and not agreement.spikes_exact and agreement.predictions_exact
    assert agreement.layers["conv1"].t_cal_mismatches == 1 and agreement.layers["conv1"].t_enc_mismatches == 0
    assert agreement.layers["fc1"].exact
    assert "conv1: 0 t_enc, 1 t_cal" in str(agreement) and "MISMATCH" in str(agreement)


def test_counts_are_compared_where_times_were_not_recorded():
    a = make_result()
    b = copy_of(a)
    b.spike_counts["input"][2, 0] += 1
    agreement = a.compare(b)
    assert agreement.layers["input"].count_mismatches == 1 and not agreement.exact
    assert agreement.to_dict()["layers"]["input"]["count_mismatches"] == 1


def test_prediction_agreement_is_a_share():
    a = make_result(n=4)
    b = copy_of(a)
    b.predictions[0] = (b.predictions[0] + 1) % 3
    agreement = a.compare(b)
    assert agreement.prediction_agreement == 0.75 and not agreement.exact and agreement.spikes_exact
    assert "predictions agree on 75.0 %" in str(agreement)


def test_a_layer_recorded_by_one_result_only_is_unmatched():
    a = make_result(times=("conv1", "fc1"))
    b = make_result(times=("conv1",))
    b = copy_of(b)
    agreement = a.compare(b)
    assert agreement.unmatched == ("fc1",) and not agreement.exact
    # restricted to the layers both recorded, the two agree
    assert a.compare(b, layers=["conv1", "input"]).exact


def test_compare_refuses_results_of_other_inputs_or_neurons():
    a = make_result(n=4)
    with pytest.raises(ValueError, match="4 inputs with one of 3"):
        a.compare(make_result(n=3))
    b = copy_of(a)
    te, tc = b.spike_times["conv1"]
    b.spike_times["conv1"] = (te.reshape(4, -1)[:, :3], tc.reshape(4, -1)[:, :3])
    with pytest.raises(ValueError, match="recorded on the same neurons"):
        a.compare(b)
    with pytest.raises(ValueError, match="layer 'nope' has no spike counts"):
        a.compare(copy_of(a), layers=["nope"])


def test_agreement_to_dict_is_json():
    a = make_result()
    d = a.compare(copy_of(a)).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["identical"] and d["spikes_identical"] and d["predictions_identical"]


def test_compare_of_two_torch_engine_runs_of_a_converted_network():
    torch = pytest.importorskip("torch")
    from scttfs_brian import convert

    torch.manual_seed(0)
    ann = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
    )
    x = torch.rand(5, 8)
    snn = convert(ann, input_shape=(8,), code="auto", T=3, calibration_data=x)
    a = snn.simulate(x, backend="torch", record=True)
    agreement = a.compare(snn.simulate(x, backend="torch", record=True))
    assert agreement.exact and agreement.max_output_difference == 0.0
    assert set(agreement.layers) == set(a.spike_counts)


# --------------------------------------------------------------------------------------------
# select
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_conv_snn():
    """A tiny converted CNN (conv, ReLU, dense, ReLU, dense: two spiking layers) and 8 inputs of it, seeds fixed."""
    torch = pytest.importorskip("torch")
    from scttfs_brian import convert

    torch.manual_seed(0)
    ann = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 4 * 4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4),
    )  # fmt: skip
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return convert(ann, input_shape=(1, 4, 4), code="auto", T=3, calibration_data=x), x


def test_select_first_n_equals_the_run_on_the_first_n_inputs(small_conv_snn):
    snn, x = small_conv_snn
    full = snn.simulate(x, backend="torch", record=True)  # 2n inputs
    first = full.select(slice(4))
    alone = snn.simulate(x[:4], backend="torch", record=True)
    agreement = first.compare(alone)
    assert agreement.exact and agreement.inputs == 4 and agreement.unmatched == ()
    assert agreement.timed_layers == list(alone.spike_times) and len(agreement.timed_layers) >= 2
    assert agreement.max_output_difference < 1e-12
    assert first.spike_counts.keys() == full.spike_counts.keys()
    np.testing.assert_array_equal(first.spikes_per_input, full.spikes_per_input[:4])
    assert first.spikes_per_input.sum() > 0  # the comparison is over real spikes
    # the whole run differs from the first half (so the comparison above can fail)
    assert not np.array_equal(
        full.spike_counts[agreement.timed_layers[0]][4:], alone.spike_counts[agreement.timed_layers[0]]
    )
    assert first.select(range(4)).compare(alone).exact  # range works as slice


def test_select_indices_and_masks_keep_the_order_given(small_conv_snn):
    snn, x = small_conv_snn
    full = snn.simulate(x, backend="torch", record=True)
    picked = full.select([6, 1, -1])
    assert picked.compare(snn.simulate(x[[6, 1, 7]], backend="torch", record=True)).exact
    mask = np.array([True, False] * 4)
    assert full.select(mask).compare(snn.simulate(x[::2], backend="torch", record=True)).exact
    assert len(full.select([]).predictions) == 0 and full.select([]).spikes_per_input.shape == (0,)


def test_select_copies_rows_and_keeps_the_runs_timings():
    res = make_result(n=4)
    sub = res.select(slice(1, 3))
    assert sub.outputs.shape == (2, 3) and sub.spike_times["conv1"][0].shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(sub.spike_counts["fc1"], res.spike_counts["fc1"][1:3])
    np.testing.assert_array_equal(sub.spike_times["fc1"][1], res.spike_times["fc1"][1][1:3])
    assert sub.timings == {"build": 0.5, "run": 1.25} and sub.memory == {"program_peak_rss_bytes": 123456}
    assert sub.latency_steps == 9 and sub.backend == "torch"
    sub.outputs[0, 0] = 99.0
    sub.spike_counts["input"][0, 0] = -5
    sub.timings["run"] = 0.0
    assert res.outputs[1, 0] != 99.0 and res.spike_counts["input"][1, 0] != -5 and res.timings["run"] == 1.25


def test_select_refuses_single_integers_bad_masks_and_out_of_range_indices():
    res = make_result(n=4)
    with pytest.raises(TypeError, match=r"single int 2.*pass \[2\]"):
        res.select(2)
    with pytest.raises(ValueError, match=r"one entry per input \(4\); got 3"):
        res.select([True, False, True])
    with pytest.raises(IndexError, match=r"input index 4 is out of range for a result of 4 inputs"):
        res.select([0, 4])
    with pytest.raises(TypeError, match="1-D sequence of integer indices"):
        res.select([0.5, 1.0])


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    res = make_result(backend="brian2")
    path = res.save(tmp_path / "sub" / "sim.npz")
    back = SimulationResult.load(path)
    np.testing.assert_array_equal(back.outputs, res.outputs)
    np.testing.assert_array_equal(back.predictions, res.predictions)
    assert back.latency_steps == 9 and back.backend == "brian2"
    assert back.timings == res.timings and back.memory == res.memory
    assert set(back.spike_counts) == set(res.spike_counts) and set(back.spike_times) == {"conv1", "fc1"}
    assert res.compare(back).exact and res.compare(back).max_output_difference == 0.0
    assert [p.name for p in path.parent.iterdir()] == ["sim.npz"]  # atomic: no temporary file left


def test_load_names_a_file_that_is_no_result(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not a simulation result"):
        SimulationResult.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        SimulationResult.load(tmp_path / "junk.npz")


def test_load_reads_results_saved_by_earlier_run_directories(tmp_path):
    res = make_result()
    arrays = {"outputs": res.outputs, "predictions": res.predictions, "latency_steps": np.array(9),
              "timings": np.array(json.dumps(res.timings)), "backend": np.array("torch")}  # fmt: skip
    arrays.update({f"counts/{k}": v for k, v in res.spike_counts.items()})
    for k, (te, tc) in res.spike_times.items():
        arrays[f"t_enc/{k}"], arrays[f"t_cal/{k}"] = te, tc
    np.savez_compressed(tmp_path / "old.npz", **arrays)
    back = SimulationResult.load(tmp_path / "old.npz")
    assert res.compare(back).exact and back.timings == res.timings and back.memory == {}
