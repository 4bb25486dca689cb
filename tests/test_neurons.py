"""Brian2 neurons (neurons.py) against the reference rule (coding.py), spike for spike."""

import brian2 as b2
import numpy as np
import pytest
from conftest import KERNEL_PAIRS, WINDOWS, probe_potentials, sc_code, ttfs_code

from scttfs_brian import PRESETS, SCTTFSCode, ThresholdKernel, TTFSCode
from scttfs_brian.brian.neurons import (
    LayerMonitors,
    encode_layer,
    finer_time_code,
    integrating_layer,
    layer_synapses,
    spike_steps,
    spiking_layer,
)


@pytest.fixture(autouse=True)
def numpy_target():
    """Networks built here run on the numpy target (the cython and standalone tests name
    their target explicitly): the default target would compile every test's code. One code
    step is 1 ms (layers take ``defaultclock.dt`` unless given a ``dt``)."""
    before = b2.prefs.codegen.target, b2.defaultclock.dt
    b2.prefs.codegen.target = "numpy"
    b2.defaultclock.dt = 1 * b2.ms
    yield
    b2.prefs.codegen.target = before[0]
    b2.defaultclock.dt = before[1]


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


# --- equation mode (eq. 14 in the model) -------------------------------------------------------


def _boundaries(code):
    """The potentials on which an ulp of a threshold decides: every threshold, every
    encoding+calibration sum, and their float neighbours (as in ``probe_potentials``)."""
    exact = [np.asarray(code.table_e)]
    if code.has_calibration:
        exact.append((np.asarray(code.table_e)[:, None] + np.asarray(code.table_c)[None, :]).ravel())
    exact = np.concatenate(exact)
    return np.concatenate([exact, np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf)])


@pytest.mark.parametrize("T", [1, 6, 16])
def test_equation_mode_equals_table_mode(kernel_pair, T):
    """Same spikes as the table (and the reference rule) on random potentials; on the exact
    boundary probes a difference could only come from ``exp`` rounding (see equations.py)."""
    code = sc_code(kernel_pair, T)
    v = probe_potentials(code, n_random=5_000, seed=T)
    t_enc, t_cal = encode_layer(v, code, thresholds="equation")
    ref_enc, ref_cal = code.spike_times(v)
    random = slice(0, 5_000)
    np.testing.assert_array_equal(t_enc[random], ref_enc[random])
    np.testing.assert_array_equal(t_cal[random], ref_cal[random])
    differ = (t_enc != ref_enc) | (t_cal != ref_cal)
    assert np.isin(v[differ], _boundaries(code)).all()


@pytest.mark.cython
def test_equation_mode_under_cython_differs_only_at_exact_boundaries():
    """Compiled code calls the C library's ``exp``, which can differ from numpy's (the table's)
    by one ulp: potentials lying exactly on a threshold may then spike one step apart."""
    code = sc_code(KERNEL_PAIRS["table1-cifar10"], 16)
    v = probe_potentials(code, n_random=5_000, seed=1)
    t_enc, t_cal = encode_layer(v, code, target="cython", thresholds="equation")
    ref_enc, ref_cal = code.spike_times(v)
    np.testing.assert_array_equal(t_enc[:5_000], ref_enc[:5_000])
    np.testing.assert_array_equal(t_cal[:5_000], ref_cal[:5_000])
    differ = (t_enc != ref_enc) | (t_cal != ref_cal)
    assert np.isin(v[differ], _boundaries(code)).all()


def test_equation_mode_ttfs_equals_reference():
    code = ttfs_code(KERNEL_PAIRS["table1-cifar100"], 8)
    v = np.random.default_rng(3).uniform(-1, 6, 3000)
    t_enc, t_cal = encode_layer(v, code, thresholds="equation")
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    assert np.all(t_cal == -1)


def _run_one_window(G, v):
    G.v = v
    mon = LayerMonitors.attach(G)
    b2.Network(G).run(G.window_duration, namespace={})
    W = G.window_steps
    t_enc = np.full(len(G), -1)
    t_cal = np.full(len(G), -1)
    t_enc[mon.spikes.i[:]] = spike_steps(mon.spikes.t[:], G.clock.dt, W)[1]
    t_cal[mon.calibrations.i[:]] = spike_steps(mon.calibrations.t[:], G.clock.dt, W)[1]
    return t_enc, t_cal


def test_kernel_parameters_are_brian2_variables_and_drive_the_spikes():
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    v = np.random.default_rng(4).uniform(0, 3, 500)
    G = spiking_layer(len(v), code, thresholds="equation")
    assert (float(G.alpha_e[:]), float(G.beta_e[:]), float(G.k_e[:])) == (2.0, -1.0, 0.8)
    assert (float(G.alpha_c[:]), float(G.beta_c[:]), float(G.k_c[:])) == (1.0, 0.8, 1.0)
    G.k_e = 0.5
    got = _run_one_window(G, v)
    slower = SCTTFSCode(6, ThresholdKernel(2.0, -1.0, 0.5), code.calibrate)
    np.testing.assert_array_equal(np.stack(got), np.stack(slower.spike_times(v)))
    assert (got[0] != code.spike_times(v)[0]).any()
    assert G.code == slower


def test_per_neuron_kernels():
    code = SCTTFSCode(5, *PRESETS["cifar100"])
    rng = np.random.default_rng(6)
    N = 300
    v = rng.uniform(0, 8, N)
    G = spiking_layer(N, code, thresholds="equation", kernels="per_neuron", unit=b2.mV)
    G.k_e = rng.uniform(0.3, 1.5, N)
    G.alpha_c = rng.uniform(0.5, 3, N) * b2.mV
    t_enc, t_cal = _run_one_window(G, v * b2.mV)
    for i in range(N):
        ref = G.code_of(i).spike_times(v[i : i + 1])
        assert (t_enc[i], t_cal[i]) == (ref[0][0], ref[1][0]), i
    with pytest.raises(ValueError, match="differ between neurons"):
        G.code  # noqa: B018


def test_code_cannot_be_reassigned_silently():
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    other = SCTTFSCode(4, *PRESETS["cifar100"])
    G = spiking_layer(3, code)
    with pytest.raises(AttributeError, match="would change nothing"):
        G.code = other
    assert G.code is code
    H = spiking_layer(200, code, thresholds="equation")
    H.code = other  # equation mode: the kernels of the simulation change
    assert (float(H.alpha_e[:]), float(H.k_c[:])) == (4.5, 1.0)
    v = np.random.default_rng(8).uniform(0, 8, 200)
    np.testing.assert_array_equal(np.stack(_run_one_window(H, v)), np.stack(other.spike_times(v)))
    with pytest.raises(ValueError, match="only the kernels can change"):
        H.code = SCTTFSCode(5, *PRESETS["cifar10"])


# --- finer time ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_finer_time_spikes_are_those_of_the_finer_code(n):
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    fine = finer_time_code(code, n)
    assert fine.T == 4 * n and fine.encode.k == 0.8 / n
    v = np.random.default_rng(n).uniform(-0.5, 4, 4000)
    t_enc, t_cal = encode_layer(v, code, thresholds="equation", steps_per_code_step=n)
    np.testing.assert_array_equal(t_enc, fine.spike_times(v)[0])
    np.testing.assert_array_equal(t_cal, fine.spike_times(v)[1])
    # spikes fall between code steps, and the error shrinks
    if n > 1:
        assert (t_enc % n != 0).any()
        assert (
            np.abs(fine.quantize(v) - np.clip(v, 0, None))[v < code.max_value].mean()
            < np.abs(code.quantize(v) - np.clip(v, 0, None))[v < code.max_value].mean()
        )


def test_finer_time_decodes_the_threshold_at_the_spike_time():
    """Two layers on finer time: post decodes w * theta(t_spike) (eqs. 16-17) and encodes it in
    the next window, delays counted in code steps."""
    code = SCTTFSCode(3, *KERNEL_PAIRS["cal-below-enc"])
    n = 4
    fine = finer_time_code(code, n)
    v = np.array([0.95, 0.6, 0.31, 0.12])
    W = np.array([[0.5, 1.0, -0.4, 2.0], [1.5, 0.2, 0.7, 0.1]])
    kw = {"thresholds": "equation", "steps_per_code_step": n}
    pre, post = spiking_layer(4, code, **kw), spiking_layer(2, code, **kw)
    out = integrating_layer(2, code, steps_per_code_step=n)
    pre.v = v
    S = layer_synapses(pre, post)
    S.connect(i=np.repeat(np.arange(4), 2), j=np.tile(np.arange(2), 4))
    S.w = W.T.ravel()
    S2 = layer_synapses(post, out, delay_steps=0)
    S2.connect(j="i")
    S2.w = 1.0
    decoded = b2.StateMonitor(post, "v", record=True, when="start", dt=pre.window_duration)
    b2.Network(pre, post, out, S, S2, decoded).run(3 * pre.window_duration, namespace={})
    np.testing.assert_allclose(decoded.v[:, 1], W @ fine.quantize(v), rtol=1e-14)
    np.testing.assert_allclose(out.v[:], fine.quantize(W @ fine.quantize(v)), rtol=1e-14)


def test_steps_per_code_step_needs_equation_mode():
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    with pytest.raises(ValueError, match="needs thresholds='equation'"):
        spiking_layer(2, code, steps_per_code_step=3)
    with pytest.raises(ValueError, match="integer >= 1"):
        spiking_layer(2, code, thresholds="equation", steps_per_code_step=0)
    with pytest.raises(ValueError, match="thresholds must be one of"):
        spiking_layer(2, code, thresholds="exp")
    with pytest.raises(ValueError, match="kernels must be one of"):
        spiking_layer(2, code, thresholds="equation", kernels="each")


# --- Brian2 idiom -------------------------------------------------------------------------------


def test_names_are_optional_and_unique():
    code = TTFSCode(3, PRESETS["cifar10"][0])
    a, b = spiking_layer(2, code), spiking_layer(2, code)
    out = integrating_layer(2, code)
    S = layer_synapses(a, out)
    assert a.name != b.name and a.name.startswith("spiking_layer")
    assert out.name.startswith("integrating_layer") and S.name.startswith(f"{a.name}_to_{out.name}")
    S.connect(j="i")
    S.w = 1.0
    a.v = [0.9, 0.05]
    b2.Network(a, b, out, S).run(2 * 3 * b2.ms, namespace={})
    np.testing.assert_array_equal(out.v[:], code.quantize(np.array([0.9, 0.05])))


def test_dt_defaults_to_the_defaultclock_at_build_time():
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    b2.defaultclock.dt = 0.25 * b2.ms
    G = spiking_layer(3, code)
    out = integrating_layer(3, code)
    b2.defaultclock.dt = 1 * b2.ms  # later changes do not move the layer's clock
    assert G.clock.dt == 0.25 * b2.ms and out.clock.dt == 0.25 * b2.ms
    assert G.window_duration == 1 * b2.ms
    v = np.array([0.9, 0.3, 0.1])
    np.testing.assert_array_equal(np.stack(_run_one_window(G, v)), np.stack(code.spike_times(v)))


def test_integrating_layer_takes_a_code_or_T():
    code = SCTTFSCode(3, *PRESETS["cifar10"])
    for spec in (code, 3):
        G = integrating_layer(1, spec)
        G.v_next = 2.0
        b2.Network(G).run(4 * b2.ms, namespace={})
        assert float(G.v[0]) == 0.0  # second boundary at step 3: v <- v_next = b = 0
    with pytest.raises(TypeError, match="window length T >= 1"):
        integrating_layer(1, 0)


def test_units_end_to_end():
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    v = np.random.default_rng(9).uniform(-0.5, 4, 300)
    t_enc, t_cal = encode_layer(v * b2.mV, code, unit=b2.mV, thresholds="equation")
    np.testing.assert_array_equal(t_enc, code.spike_times(v)[0])
    G = spiking_layer(2, code, unit=b2.mV, thresholds="equation")
    assert b2.have_same_dimensions(G.alpha_e, b2.mV) and b2.have_same_dimensions(G.theta_e, b2.mV)
    assert G.window_duration == 6 * b2.ms
    with pytest.raises(b2.DimensionMismatchError):
        G.v = 1.0


@pytest.mark.standalone
def test_cpp_standalone_equation_mode_on_finer_time():
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    v = np.random.default_rng(0).uniform(-0.5, 4, 2000)
    t_enc, t_cal = encode_layer(
        v, code, target="cpp_standalone", thresholds="equation", steps_per_code_step=3
    )
    ref_enc, ref_cal = finer_time_code(code, 3).spike_times(v)
    np.testing.assert_array_equal(t_enc, ref_enc)
    np.testing.assert_array_equal(t_cal, ref_cal)


@pytest.mark.parametrize("T", [1, 3, 6])
def test_brian2_layer_on_the_derived_codeword_boundaries(kernel_pair, T):
    """The potentials the torch engine's lookup is built on (every codeword boundary derived by
    bisection, and 4 floats either way): the Brian2 layer decides them as the stepwise rule."""
    from scttfs_brian.coding import float_neighbours

    code = sc_code(kernel_pair, T)
    v = float_neighbours(code.boundaries(np.float64).bounds, 4)
    v = v[np.isfinite(v)]
    t_enc, t_cal = encode_layer(v, code)
    ref_enc, ref_cal = code.spike_times(v)
    np.testing.assert_array_equal(t_enc, ref_enc)
    np.testing.assert_array_equal(t_cal, ref_cal)
    assert (t_enc >= 0).any() and (t_enc < 0).any()


def test_membrane_with_unit_on_exact_thresholds():
    """With ``unit=mV`` Brian2 stores potentials and thresholds in volts (times 1e-3, not exact in
    binary), so the residual ``v - theta_e`` of a potential lying exactly on an encoding +
    calibration sum can round to the other side of ``theta_c``: there, and only there, the
    calibration may fall one step apart (README, One layer in Brian2). The encoding spike never
    differs; potentials off the exact sums decide as without a unit."""
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    sums = (code.table_e[:, None] + code.table_c[None, :]).ravel()
    exact = np.concatenate([code.table_e, sums])
    v = np.concatenate([exact, np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf)])
    v = np.concatenate([v, np.random.default_rng(5).uniform(-0.5, 4, 5000)])
    t_enc, t_cal = encode_layer(v, code, unit=b2.mV)
    ref_enc, ref_cal = code.spike_times(v)
    np.testing.assert_array_equal(t_enc, ref_enc)
    differ = t_cal != ref_cal
    near_sums = np.concatenate([sums, np.nextafter(sums, np.inf), np.nextafter(sums, -np.inf)])
    assert np.isin(v[differ], near_sums).all()
    assert differ.sum() <= 8, f"{differ.sum()} of {v.size} potentials calibrate elsewhere with mV"
