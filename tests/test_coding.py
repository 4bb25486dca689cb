"""The SC-TTFS / TTFS codes of scttfs_brian.coding: the stepwise rule, decoding, codebook, validation."""

import numpy as np
import pytest
import torch
from conftest import KERNEL_PAIRS, WINDOWS, probe_potentials, sc_code, ttfs_code

from scttfs_brian import PRESETS, SCTTFSCode, ThresholdKernel, TTFSCode
from scttfs_brian.coding import closed_form_time
from scttfs_brian.torch import encode


def reference_spike_times(v, code):
    """A scalar, one-neuron-at-a-time transcription of SPEC section 1 (independent of the
    vectorized implementation)."""
    t_enc = t_cal = -1
    for t in range(code.T):
        if t_enc < 0 and v >= code.table_e[t]:
            t_enc, v = t, v - code.table_e[t]
        if code.calibrate is not None and t_enc >= 0 and t_cal < 0 and v >= code.table_c[t]:
            t_cal, v = t, 0.0
            break
    return t_enc, t_cal


@pytest.mark.parametrize("T", WINDOWS)
def test_vectorized_rule_matches_scalar_transcription(kernel_pair, T):
    for code in (sc_code(kernel_pair, T), ttfs_code(kernel_pair, T)):
        v = probe_potentials(code, n_random=2000)
        t_enc, t_cal = code.spike_times(v)
        ref = np.array([reference_spike_times(x, code) for x in v])
        np.testing.assert_array_equal(t_enc, ref[:, 0])
        np.testing.assert_array_equal(t_cal, ref[:, 1])


def test_table1_thresholds_follow_eq14():
    enc, cal = PRESETS["cifar10"]
    code = SCTTFSCode(6, enc, cal)
    t = np.arange(6)
    np.testing.assert_allclose(code.table_e, 2.0 * np.exp(-0.8 * t - 1.0), rtol=1e-15)
    np.testing.assert_allclose(code.table_c, 1.0 * np.exp(-1.0 * t + 0.8), rtol=1e-15)
    assert code.theta_e(0) == pytest.approx(0.7357588823428847)
    assert code.theta_c(np.array([5]))[0] == pytest.approx(np.exp(-4.2))


def test_spike_times_hand_computed():
    # theta_e = 1, 0.5, 0.25, 0.125 ; theta_c = 0.5, 0.25, 0.125, 0.0625
    code = SCTTFSCode(4, ThresholdKernel(1.0, 0.0, np.log(2)), ThresholdKernel(0.5, 0.0, np.log(2)))
    v = np.array([1.6, 1.5, 1.2, 0.3, 0.1, -1.0, 0.0, 0.13, 5.0])
    t_enc, t_cal = code.spike_times(v)
    np.testing.assert_array_equal(t_enc, [0, 0, 0, 2, -1, -1, -1, 3, 0])
    np.testing.assert_array_equal(t_cal, [0, 0, 2, -1, -1, -1, -1, -1, 0])
    np.testing.assert_allclose(code.decode(t_enc, t_cal), [1.5, 1.5, 1.125, 0.25, 0, 0, 0, 0.125, 1.5])


def test_same_step_calibration_happens_when_residual_allows_and_only_then(kernel_pair):
    code = sc_code(kernel_pair, 6)
    e, c = np.asarray(code.table_e), np.asarray(code.table_c)
    v = probe_potentials(code)
    t_enc, t_cal = code.spike_times(v)
    fired = t_enc >= 0
    residual = v[fired] - e[t_enc[fired]]
    same = t_cal[fired] == t_enc[fired]
    np.testing.assert_array_equal(same, residual >= c[t_enc[fired]])
    # and such potentials exist for every encoding step where the gap allows it
    for t in range(code.T):
        gap = np.inf if t == 0 else e[t - 1] - e[t]
        if c[t] < gap:
            x = np.array([e[t] + c[t] + min(gap - c[t], 1.0) * 0.5])
            assert tuple(int(a[0]) for a in code.spike_times(x)) == (t, t)


def test_calibration_never_precedes_encoding(kernel_pair):
    code = sc_code(kernel_pair, 8)
    t_enc, t_cal = code.spike_times(probe_potentials(code))
    assert np.all((t_cal < 0) | (t_cal >= t_enc))
    assert np.all((t_enc >= 0) | (t_cal < 0))


@pytest.mark.parametrize("T", range(1, 11))
def test_codebook_size_is_paper_N_T(T):
    # kernels with theta_c(t) < theta_e(t-1) - theta_e(t) make every admissible sequence reachable
    code = SCTTFSCode(T, ThresholdKernel(1.0, 0.0, 0.5), ThresholdKernel(0.5, 0.0, 0.5))
    words = code.codebook()
    assert len(words) == T * (T + 3) // 2 + 1  # + silence
    assert words[0] == (-1, -1, 0.0)
    values = [w.value for w in words]
    assert values == sorted(values)
    # with these kernels no two words share a value, and each word decodes to its value
    assert np.unique(np.round(values, 12)).size == len(words)
    t_enc, t_cal = (np.array([getattr(w, f) for w in words]) for f in ("t_enc", "t_cal"))
    np.testing.assert_array_equal(code.decode(t_enc, t_cal), values)
    ttfs = TTFSCode(T, code.encode).codebook()
    assert len(ttfs) == T + 1


def test_codebook_lists_exactly_the_reachable_sequences(kernel_pair):
    code = sc_code(kernel_pair, 6)
    words = code.codebook()
    book = {(w.t_enc, w.t_cal): w.value for w in words}
    v = probe_potentials(code, n_random=50_000, seed=3)
    t_enc, t_cal = code.spike_times(v)
    seen = set(zip(t_enc.tolist(), t_cal.tolist()))
    assert seen <= set(book), "a potential produced a sequence outside the codebook"
    z = code.quantize(v)
    np.testing.assert_array_equal(z, [book[s] for s in zip(t_enc.tolist(), t_cal.tolist())])
    # every listed sequence is produced by a potential inside its cell: encoding at t leaves a
    # residual in [0, gap_t); calibrating at s needs it in [theta_c(s), theta_c(s-1))
    e, c = code.table_e, code.table_c
    for w in words[1:]:
        t, s = w.t_enc, w.t_cal
        gap = np.inf if t == 0 else e[t - 1] - e[t]
        if s < 0:
            residual = 0.0
        else:
            upper = min(gap, np.inf if s == t else c[s - 1])
            residual = c[s] + (min(upper, 2 * c[s] + 1.0) - c[s]) / 2
        probe = e[t] + residual
        got = tuple(int(a[0]) for a in code.spike_times(np.array([probe])))
        assert got == (w.t_enc, w.t_cal)
    n_adm = len(code.codebook(include_unreachable=True))
    assert n_adm == 6 * 9 // 2 + 1 and len(words) <= n_adm


def test_table1_cifar10_preset_has_unreachable_sequences():
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    assert len(code.codebook()) - 1 == 23  # of the paper's N(6) = 27
    assert len(SCTTFSCode(6, *PRESETS["cifar100"]).codebook()) - 1 == 27


def test_ttfs_one_spike_value_theta(kernel_pair):
    code = ttfs_code(kernel_pair, 6)
    v = probe_potentials(code)
    t_enc, t_cal = code.spike_times(v)
    assert np.all(t_cal == -1)
    z = code.quantize(v)
    np.testing.assert_array_equal(z[t_enc >= 0], code.table_e[t_enc[t_enc >= 0]])
    assert np.all(z[t_enc < 0] == 0)


@pytest.mark.parametrize("T", WINDOWS)
def test_scttfs_error_never_exceeds_ttfs_error(kernel_pair, T):
    sc, tt = sc_code(kernel_pair, T), ttfs_code(kernel_pair, T)
    v = np.random.default_rng(T).uniform(0, sc.encode.alpha * np.exp(sc.encode.beta), 20_000)
    err_sc = np.abs(v - sc.quantize(v))
    err_tt = np.abs(v - tt.quantize(v))
    assert np.all(err_sc <= err_tt)
    calibrated = sc.spike_times(v)[1] >= 0
    assert err_sc.mean() <= err_tt.mean()
    if calibrated.any():
        assert err_sc[calibrated].mean() < err_tt[calibrated].mean()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_and_numpy_agree_exactly(kernel_pair, dtype):
    for code in (sc_code(kernel_pair, 8), ttfs_code(kernel_pair, 8)):
        v = probe_potentials(code).astype(np.float64 if dtype == torch.float64 else np.float32)
        tn = code.spike_times(v)
        tt = code.spike_times(torch.from_numpy(v))
        for a, b in zip(tn, tt):
            assert isinstance(b, torch.Tensor) and b.dtype == torch.int64
            np.testing.assert_array_equal(a, b.numpy())
        zn, zt = code.quantize(v), code.quantize(torch.from_numpy(v))
        assert zt.dtype == dtype and zn.dtype == v.dtype
        np.testing.assert_array_equal(zn, zt.numpy())


def test_shapes_and_scalars_are_kept():
    code = SCTTFSCode(4, *KERNEL_PAIRS["cal-below-enc"])
    v = np.linspace(-1, 2, 24).reshape(2, 3, 4)
    t_enc, t_cal = code.spike_times(v)
    assert t_enc.shape == t_cal.shape == (2, 3, 4)
    te, tc = code.spike_times(1.5)
    assert te.shape == () and int(te) == 0
    assert code.quantize([0.9, 0.1]).dtype == np.float64


def test_closed_form_agrees_with_stepwise_away_from_boundaries(kernel_pair):
    code = ttfs_code(kernel_pair, 8)
    v = np.random.default_rng(1).uniform(1e-3, 3 * code.max_value, 20_000)
    # drop potentials within 1e-9 (relative) of a threshold, where rounding may decide
    near = np.any(np.abs(v[:, None] / code.table_e[None, :] - 1) < 1e-9, axis=1)
    v = v[~near]
    np.testing.assert_array_equal(closed_form_time(v, code.encode, code.T), code.spike_times(v)[0])


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda: ThresholdKernel(-1.0, 0.0, 1.0), ValueError, ["alpha", "-1.0", "> 0"]),
        (lambda: ThresholdKernel(1.0, 0.0, 0.0), ValueError, ["k", "0.0", "> 0"]),
        (lambda: ThresholdKernel(1.0, float("nan"), 1.0), ValueError, ["beta", "finite"]),
        (lambda: ThresholdKernel("1", 0.0, 1.0), TypeError, ["alpha", "str"]),
        (lambda: SCTTFSCode(0, *PRESETS["cifar10"]), ValueError, ["T", "0", ">= 1"]),
        (lambda: SCTTFSCode(2.5, *PRESETS["cifar10"]), TypeError, ["T", "2.5", "integer"]),
        (lambda: SCTTFSCode(4, PRESETS["cifar10"][0], None), TypeError, ["calibrate", "ThresholdKernel"]),
        (lambda: TTFSCode(True, PRESETS["cifar10"][0]), TypeError, ["T"]),
    ],
)
def test_bad_parameters_are_named_in_the_error(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize(
    "v, exc, words",
    [
        (np.array([0.1, np.nan]), ValueError, ["v", "finite", "nan", "index 1"]),
        (torch.tensor([np.inf]), ValueError, ["v", "finite", "inf"]),
        ("0.5", TypeError, ["v", "str"]),
        (np.array([1 + 1j]), TypeError, ["v", "complex"]),
        (None, TypeError, ["v"]),
    ],
)
def test_bad_potentials_are_named_in_the_error(v, exc, words):
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    with pytest.raises(exc) as info:
        code.spike_times(v)
    for w in words:
        assert w in str(info.value)


def test_decode_checks_spike_times():
    code = SCTTFSCode(4, *PRESETS["cifar10"])
    with pytest.raises(ValueError, match=r"t_enc must lie in \[-1, 3\]"):
        code.decode(np.array([4]), np.array([-1]))
    with pytest.raises(ValueError, match="t_cal must be >= t_enc"):
        code.decode(np.array([2]), np.array([1]))
    with pytest.raises(TypeError, match="integer"):
        code.decode(np.array([0.5]))


def test_codes_compare_by_value():
    a = SCTTFSCode(4, *PRESETS["cifar10"])
    assert a == SCTTFSCode(4, ThresholdKernel(2.0, -1.0, 0.8), ThresholdKernel(1.0, 0.8, 1.0))
    assert a != SCTTFSCode(5, *PRESETS["cifar10"]) and a != TTFSCode(4, PRESETS["cifar10"][0])
    assert len({a, SCTTFSCode(4, *PRESETS["cifar10"])}) == 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_encode_torch_eager_and_compiled_equal_the_rule(dtype):
    """The torch twin's fused path (spike times + decoded values in one pass), eager and
    through torch.compile, gives exactly spike_times and quantize."""
    for pair in (KERNEL_PAIRS["table1-cifar10"], KERNEL_PAIRS["cal-above-enc"]):
        for code in (sc_code(pair, 6), ttfs_code(pair, 6)):
            v = torch.from_numpy(probe_potentials(code, n_random=5000)).to(dtype)
            v = v[: len(v) // 4 * 4].reshape(-1, 4)
            ref_enc, ref_cal = code.spike_times(v)
            ref_z = code.quantize(v)
            for compiled in (False, True):
                t_enc, t_cal, z = encode(code, v, compiled=compiled)
                assert t_enc.dtype == dtype and z.dtype == dtype and z.shape == v.shape
                assert torch.equal(t_enc.long(), ref_enc) and torch.equal(t_cal.long(), ref_cal)
                assert torch.equal(z, ref_z)
