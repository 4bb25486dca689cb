"""Brian2 neurons (neurons.py) against the reference rule (coding.py), spike for spike."""

import brian2 as b2
import numpy as np
import pytest
from conftest import KERNEL_PAIRS, WINDOWS, probe_potentials, sc_code, ttfs_code

from scttfs_brian import PRESETS, SCTTFSCode
from scttfs_brian.brian.neurons import (
    LayerMonitors,
    encode_layer,
    integrating_layer,
    layer_synapses,
    spike_steps,
    spiking_layer,
)


@pytest.mark.parametrize("T", WINDOWS)
def test_brian2_layer_equals_reference_rule(kernel_pair, T):
    code = sc_code(kernel_pair, T)
    v = probe_potentials(code, n_random=10_000, seed=T)
    assert v.size >= 10_000
    t_enc, t_cal = encode_layer(v, code)
    ref_enc, ref_cal = code.spike_times(v)
    np.testing.assert_array_equal(t_enc, ref_enc)
    np.testing.assert_array_equal(t_cal, ref_cal)
    # the probes exercise both kinds of events, and the same-step calibration where reachable
    assert (t_enc >= 0).any() and (t_enc < 0).any()
    if T > 1:
        assert (t_cal >= 0).any()


@pytest.mark.parametrize("name", ["table1-cifar10", "cal-above-enc"])
@pytest.mark.parametrize("T", [1, 6, 16])
def test_brian2_ttfs_layer_equals_reference_rule(name, T):
    code = ttfs_code(KERNEL_PAIRS[name], T)
    v = probe_potentials(code, n_random=10_000, seed=T)
    t_enc, t_cal = encode_layer(v, code)
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    assert np.all(t_cal == -1)


def test_same_step_calibration_in_brian2():
    enc, cal = KERNEL_PAIRS["cal-below-enc"]
    code = SCTTFSCode(4, enc, cal)
    e, c = code.table_e, code.table_c
    # just enough residual for a same-step calibration, and just too little
    above = e + c + 1e-9
    below = e + c - 1e-9
    t_enc, t_cal = encode_layer(np.concatenate([above, below]), code)
    np.testing.assert_array_equal(t_enc, np.tile(np.arange(4), 2))
    np.testing.assert_array_equal(t_cal[:4], np.arange(4))
    assert np.all(t_cal[4:] != t_enc[4:])


def test_any_shape_and_many_neurons_in_one_run():
    code = SCTTFSCode(6, *PRESETS["cifar100"])
    v = np.random.default_rng(0).uniform(-1, 8, size=(20, 30, 40))
    t_enc, t_cal = encode_layer(v, code)
    assert t_enc.shape == (20, 30, 40)
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    np.testing.assert_array_equal(t_cal, code.spike_times(v)[1])


def test_membrane_with_unit_and_other_dt():
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    v = np.random.default_rng(2).uniform(-0.5, 4, 5000)
    t_enc, t_cal = encode_layer(v, code, unit=b2.mV, dt=0.1 * b2.ms)
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    np.testing.assert_array_equal(t_cal, code.spike_times(v)[1])


def test_two_layers_decode_eq16_and_pipeline_windows():
    """A layer decodes the previous layer's spikes (eq. 16) during its encoding window and
    encodes the result in the next window; with a bias added once per decoding window."""
    code = SCTTFSCode(4, *KERNEL_PAIRS["cal-below-enc"])
    rng = np.random.default_rng(5)
    n_pre, n_post, n_windows = 7, 3, 3
    v_pre = rng.uniform(-0.2, 1.5, (n_windows, n_pre))
    W = rng.normal(0, 0.6, (n_post, n_pre))
    bias = rng.normal(0, 0.1, n_post)
    ta = b2.TimedArray(np.vstack([v_pre, np.zeros(n_pre)]), dt=code.T * b2.ms)
    pre = spiking_layer(n_pre, code, name="pre", window_input="I(t, i)", namespace={"I": ta})
    post = spiking_layer(n_post, code, name="post")
    post.b = bias
    S = layer_synapses(pre, post, name="syn")
    i, j = np.meshgrid(np.arange(n_pre), np.arange(n_post))
    S.connect(i=i.ravel(), j=j.ravel())
    S.w = W[j.ravel(), i.ravel()]
    mon_pre, mon_post = LayerMonitors.attach(pre), LayerMonitors.attach(post)
    net = b2.Network(pre, post, S, *mon_pre.objects, *mon_post.objects)
    net.run((n_windows + 1) * code.T * b2.ms, namespace={})
    win, step = spike_steps(mon_post.spikes.t[:], b2.ms, code.T)
    cwin, cstep = spike_steps(mon_post.calibrations.t[:], b2.ms, code.T)
    for w in range(n_windows):
        v_post = bias + W @ code.quantize(v_pre[w])  # decoded in window w, encoded in w + 1
        ref_enc, ref_cal = code.spike_times(v_post)
        got_enc = np.full(n_post, -1)
        got_enc[mon_post.spikes.i[:][win == w + 1]] = step[win == w + 1]
        got_cal = np.full(n_post, -1)
        got_cal[mon_post.calibrations.i[:][cwin == w + 1]] = cstep[cwin == w + 1]
        np.testing.assert_array_equal(got_enc, ref_enc)
        np.testing.assert_array_equal(got_cal, ref_cal)


def test_integrating_layer_moves_potential_at_window_boundary():
    G = integrating_layer(2, 3, name="out")
    G.v_next = [1.5, -2.0]
    G.b = [0.25, 0.0]
    net = b2.Network(G)
    net.run(3 * b2.ms)  # boundary at t=0: v <- v_next, v_next <- b
    np.testing.assert_array_equal(G.v[:], [1.5, -2.0])
    np.testing.assert_array_equal(G.v_next[:], [0.25, 0.0])


def test_errors_name_the_parameter():
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    with pytest.raises(TypeError, match="code must be an SCTTFSCode or a TTFSCode"):
        encode_layer([0.1], "code")
    with pytest.raises(TypeError, match="dt must be a positive Brian2 time"):
        encode_layer([0.1], code, dt=1.0)
    with pytest.raises(TypeError, match="unit must be None or a positive Brian2 quantity"):
        encode_layer([0.1], code, unit=2.0)
    with pytest.raises(ValueError, match="target must be one of"):
        encode_layer([0.1], code, target="gpu")
    with pytest.raises(ValueError, match="v must be finite"):
        encode_layer([0.1, np.nan], code)


@pytest.mark.cython
def test_cython_target_equals_reference_rule():
    code = sc_code(KERNEL_PAIRS["table1-cifar100"], 6)
    v = probe_potentials(code, n_random=10_000)
    t_enc, t_cal = encode_layer(v, code, target="cython")
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    np.testing.assert_array_equal(t_cal, code.spike_times(v)[1])


@pytest.mark.standalone
def test_cpp_standalone_equals_reference_rule():
    code = sc_code(KERNEL_PAIRS["cal-above-enc"], 8)
    v = probe_potentials(code, n_random=10_000)
    t_enc, t_cal = encode_layer(v, code, target="cpp_standalone")
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    np.testing.assert_array_equal(t_cal, code.spike_times(v)[1])
    # runtime mode still works after a standalone build in the same process
    np.testing.assert_array_equal(encode_layer(v[:100], code)[0], code.spike_times(v[:100])[0])
