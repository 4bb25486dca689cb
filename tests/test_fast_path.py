"""The torch engine's fast exact path (scttfs_brian.torch.lookup: codeword boundaries derived
from the stepwise rule, looked up eagerly or through torch.compile) against the stepwise rule,
bit for bit."""

import warnings

import numpy as np
import pytest
import torch
from conftest import KERNEL_PAIRS, WINDOWS, sc_code, ttfs_code
from torch import nn

from scttfs_brian import SCTTFSCode, ThresholdKernel, TTFSCode, convert
from scttfs_brian import torch as engine
from scttfs_brian.coding import float_neighbours, spike_boundaries, stepwise_spike_times
from scttfs_brian.torch import boundaries, encode, encode_layer, lookup

DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
N_RANDOM = 100_000


def fast_probe(code, dtype, seed=0):
    """Every boundary and its 4 float neighbours either way, zeros, negatives, values above the
    range, the smallest floats, and N_RANDOM random values (uniform over the range and beyond,
    and log-uniform down to 1e-6 of the smallest threshold)."""
    rng = np.random.default_rng(seed)
    top = code.max_value
    fmax = np.finfo(dtype).max
    b = boundaries(code, dtype).bounds
    tiny = np.finfo(dtype)
    parts = [
        float_neighbours(b.astype(dtype), 4),
        np.array([0.0, -0.0, tiny.smallest_subnormal, tiny.tiny, -tiny.smallest_subnormal, fmax, -fmax]),
        -rng.exponential(top, 1000),
        rng.uniform(top, 1e6 * top, 1000),
        rng.uniform(-0.5 * top, 1.5 * top, N_RANDOM // 2),
        np.exp(rng.uniform(np.log(code.min_value * 1e-6), np.log(2 * top), N_RANDOM - N_RANDOM // 2)),
    ]
    return np.concatenate([p.astype(dtype) for p in parts])


def reference(code, v):
    """The stepwise rule (numpy) and the old torch loop (spike times and decoded value)."""
    t_enc, t_cal = stepwise_spike_times(v, code.table_e, code.table_c)
    z = code.decode(t_enc, t_cal).astype(v.dtype)
    vt = torch.from_numpy(v)
    loop = encode(code, vt, method="stepwise", check=False)
    assert np.array_equal(loop[0].long().numpy(), t_enc) and np.array_equal(loop[1].long().numpy(), t_cal)
    assert np.array_equal(loop[2].numpy().view(np.uint8), z.view(np.uint8))
    return t_enc, t_cal, z


def assert_same(got, ref, dtype):
    t_enc, t_cal, z = got
    assert t_enc.dtype == t_cal.dtype == z.dtype == DTYPES[dtype]
    np.testing.assert_array_equal(t_enc.long().numpy(), ref[0])
    np.testing.assert_array_equal(t_cal.long().numpy(), ref[1])
    # bit for bit (also the sign of zero)
    np.testing.assert_array_equal(z.numpy().view(np.uint8), ref[2].view(np.uint8))


@pytest.mark.parametrize("T", WINDOWS)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=["float32", "float64"])
def test_eager_lookup_equals_the_stepwise_rule(kernel_pair, T, dtype):
    """For every kernel pair, window and dtype, SC-TTFS and TTFS: about 102k potentials each."""
    for code in (sc_code(kernel_pair, T), ttfs_code(kernel_pair, T)):
        v = fast_probe(code, dtype, seed=T)
        ref = reference(code, v)
        assert_same(encode(code, torch.from_numpy(v)), ref, dtype)
        assert_same(encode(code, torch.from_numpy(v), check=False), ref, dtype)
        # the twin's layer path: z, int64 spike times and the counts per sample
        parts = [torch.from_numpy(v[: len(v) // 2 * 2].reshape(2, -1))]
        z, (t_enc, t_cal), n, _ = encode_layer(code, parts, times=True, counts=True)
        half = len(v) // 2 * 2
        assert t_enc.dtype == torch.int64
        assert_same(
            (t_enc.to(z.dtype), t_cal.to(z.dtype), z), tuple(r[:half].reshape(2, -1) for r in ref), dtype
        )
        n_ref = np.stack(
            [(ref[0][:half].reshape(2, -1) >= 0).sum(1), (ref[1][:half].reshape(2, -1) >= 0).sum(1)], 1
        )
        np.testing.assert_array_equal(n.numpy(), n_ref)


# long windows compile the biggest kernels (tens of seconds each without inductor's cache):
# marked slow, they run in `make test-all`; the eager tests cover every window
COMPILED_CASES = [
    pytest.param("table1-cifar10", T, marks=pytest.mark.slow) if T >= 8 else ("table1-cifar10", T)
    for T in WINDOWS
] + [(name, 6) for name in KERNEL_PAIRS if name != "table1-cifar10"]


@pytest.mark.parametrize("pair,T", COMPILED_CASES)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=["float32", "float64"])
def test_compiled_lookup_equals_the_stepwise_rule(pair, T, dtype):
    for code in (sc_code(KERNEL_PAIRS[pair], T), ttfs_code(KERNEL_PAIRS[pair], T)):
        v = fast_probe(code, dtype, seed=100 + T)
        ref = reference(code, v)
        assert_same(encode(code, torch.from_numpy(v), compiled=True), ref, dtype)
        half = len(v) // 2 * 2
        parts = [torch.from_numpy(v[:half].reshape(2, -1))]
        z, (t_enc, t_cal), n, _ = encode_layer(code, parts, compiled=True, times=True, counts=True)
        assert_same(
            (t_enc.to(z.dtype), t_cal.to(z.dtype), z), tuple(r[:half].reshape(2, -1) for r in ref), dtype
        )
        n_ref = np.stack(
            [(ref[0][:half].reshape(2, -1) >= 0).sum(1), (ref[1][:half].reshape(2, -1) >= 0).sum(1)], 1
        )
        np.testing.assert_array_equal(n.numpy(), n_ref)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=["float32", "float64"])
def test_non_finite_potentials_as_before(compiled, dtype):
    """check=True refuses NaN and inf as before; check=False gives the loop's result (NaN and
    -inf silent, +inf the largest word), eager and compiled."""
    code = SCTTFSCode(6, ThresholdKernel(2.0, -1.0, 0.8), ThresholdKernel(1.0, 0.8, 1.0))
    v = np.array([np.nan, np.inf, -np.inf, 0.5, 3.0, -1.0, 0.0], dtype=dtype)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="must be finite"):
            encode(code, torch.tensor([1.0, bad], dtype=DTYPES[dtype]), compiled=compiled)
    loop = encode(code, torch.from_numpy(v), method="stepwise", check=False)
    fast = encode(code, torch.from_numpy(v), compiled=compiled, check=False)
    for a, b in zip(loop, fast):
        assert torch.equal(a, b)
    assert loop[0][0] == -1 and loop[0][1] == 0 and loop[0][2] == -1
    z, (t_enc, t_cal), _, _ = encode_layer(
        code, [torch.from_numpy(v).reshape(1, -1)], compiled=compiled, times=True
    )
    assert torch.equal(z[0], loop[2]) and torch.equal(t_enc[0], loop[0].long())


def test_boundaries_are_derived_once_and_checked():
    code = SCTTFSCode(6, *KERNEL_PAIRS["table1-cifar10"])
    b = boundaries(code, np.float32)
    assert boundaries(code, torch.float32) is b and boundaries(code, np.float64) is not b
    assert np.all(np.diff(b.bounds) > 0) and len(b.t_enc) == len(b.bounds) + 1
    # the words of the lookup are the code's reachable sequences
    words = {(w.t_enc, w.t_cal) for w in code.codebook()}
    assert set(zip(b.t_enc.tolist(), b.t_cal.tolist())) == words
    # each boundary is the smallest potential of its word under the rule
    for dtype in (np.float32, np.float64):
        bb = boundaries(code, dtype)
        below = np.nextafter(bb.bounds, -np.inf).astype(dtype)
        te, tc = stepwise_spike_times(bb.bounds, code.table_e, code.table_c)
        assert np.array_equal(te, bb.t_enc[1:]) and np.array_equal(tc, bb.t_cal[1:])
        te, tc = stepwise_spike_times(below, code.table_e, code.table_c)
        assert np.array_equal(te, bb.t_enc[:-1]) and np.array_equal(tc, bb.t_cal[:-1])


def test_a_non_monotone_rule_is_refused_loudly():
    """Tables that increase with t make the rule non-monotone in v: no boundaries (an error),
    and a code whose boundaries fail falls back to the loop with a warning, same results."""
    with pytest.raises(RuntimeError, match="not monotone"):
        spike_boundaries(np.array([1.0, 2.0, 0.5]), None, np.float64)
    with pytest.raises(RuntimeError, match="not monotone"):
        spike_boundaries(np.array([1.0, 0.5]), np.array([0.1, 0.3]), np.float32)

    class BrokenBoundaries(SCTTFSCode):
        def boundaries(self, dtype):
            raise RuntimeError("the codeword boundaries disagree with the stepwise rule")

    code = BrokenBoundaries(4, *KERNEL_PAIRS["cal-below-enc"])
    v = torch.linspace(-1, 3, 1001, dtype=torch.float64)
    with pytest.warns(UserWarning, match="runs the stepwise loop"):
        got = encode(code, v)
    ref = encode(code, v, method="stepwise")
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


def test_graph_module_fast_paths_equal_the_loop():
    """GraphModule: eager lookup, compiled lookup and the old loop give identical outputs,
    spike times, decoded values and counts (float32 and float64, residual network, TTFS too)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 6, 3, padding=1)
            self.c2 = nn.Conv2d(6, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 16, 10)

        def forward(self, x):
            a = torch.relu(self.c1(x))
            b = torch.relu(self.c2(a) + a)
            return self.fc(torch.flatten(nn.functional.avg_pool2d(b, 2), 1))

    torch.manual_seed(0)
    model = Net().eval()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for code in (SCTTFSCode(6, *KERNEL_PAIRS["table1-cifar10"]), TTFSCode(4, KERNEL_PAIRS["fast-decay"][0])):
        snn = convert(model, (1, 8, 8), code=code)
        for dtype in (torch.float32, torch.float64):
            module = engine.GraphModule(snn.graph, dtype)
            outs = {}
            for compiled in (False, True):
                module.compiled = compiled
                outs[compiled] = module(x, record=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                module.compiled, module.method = False, "stepwise"
                outs["loop"] = module(x, record=True)
            ref = outs["loop"]
            for out in (outs[False], outs[True]):
                assert torch.equal(out.output, ref.output)
                for k in ref.spike_times:
                    assert all(torch.equal(a, b) for a, b in zip(out.spike_times[k], ref.spike_times[k]))
                    assert torch.equal(out.decoded[k], ref.decoded[k])
                    assert torch.equal(out.spike_counts[k], ref.spike_counts[k])
                assert set(out.spike_counts) == set(ref.spike_counts) == set(ref.spike_times)


def test_auto_compiles_large_layers_and_falls_back_to_eager(monkeypatch):
    """compiled="auto" (the twin's default): the compiled lookup for layers of at least
    AUTO_COMPILE_MIN potentials, the same results as eager; where torch.compile fails, one
    warning and the eager lookup from then on, same results."""
    code = SCTTFSCode(6, *KERNEL_PAIRS["table1-cifar10"])
    v = torch.from_numpy(fast_probe(code, np.float32)[:40_000].reshape(4, -1))
    ref = encode_layer(code, [v], compiled=False, times=True)

    def assert_equal(got):
        assert torch.equal(got[0], ref[0]) and torch.equal(got[2], ref[2])
        assert all(torch.equal(a, b) for a, b in zip(got[1], ref[1]))

    monkeypatch.setattr(lookup, "AUTO_COMPILE_MIN", 1000)
    monkeypatch.setattr(lookup, "COMPILE_STATE", {})
    assert_equal(encode_layer(code, [v], compiled="auto", times=True))
    assert lookup.COMPILE_STATE == {"cpu": True}

    def no_compiler(key=None, pools=()):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(lookup, "compiled_lookup", no_compiler)
    monkeypatch.setattr(lookup, "COMPILE_STATE", {})
    with pytest.warns(UserWarning, match="torch.compile failed on cpu"):
        assert_equal(encode_layer(code, [v], compiled="auto", times=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_equal(encode_layer(code, [v], compiled="auto", times=True))
    assert lookup.COMPILE_STATE == {"cpu": False}


def test_auto_counts_the_whole_network(monkeypatch):
    """compiled="auto" in the twin decides per call on all spiking layers' potentials together:
    a network whose layers are each below AUTO_COMPILE_MIN, but not together, is compiled in every
    layer (and a smaller batch of it stays eager); the results equal the eager lookup's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 10)).eval()
    snn = convert(model, (16,), code=SCTTFSCode(3, *KERNEL_PAIRS["table1-cifar10"]))
    x = torch.rand(20, 16, generator=torch.Generator().manual_seed(1))
    per_call = len(x) * (32 + 24)  # the two hidden layers spike; the output layer is analog
    assert per_call == 20 * sum(layer.size for layer in snn.graph.layers if layer.spiking)
    calls = []
    real = lookup.compiled_lookup
    monkeypatch.setattr(lookup, "compiled_lookup", lambda key=None, pools=(): calls.append(key) or real(key, pools))
    monkeypatch.setattr(lookup, "AUTO_COMPILE_MIN", per_call)  # every layer alone is below it
    monkeypatch.setattr(lookup, "COMPILE_STATE", {})
    module = engine.GraphModule(snn.graph, torch.float32)
    ref = engine.GraphModule(snn.graph, torch.float32, compiled=False)(x, record=True)
    out = module(x, record=True)
    assert len(calls) == len([la for la in snn.graph.layers if la.spiking])
    assert torch.equal(out.output, ref.output)
    for k in ref.spike_times:
        assert torch.equal(out.decoded[k], ref.decoded[k])
        assert torch.equal(out.spike_counts[k], ref.spike_counts[k])
    calls.clear()
    module(x[:19])  # one image fewer: below the threshold, eager in every layer
    assert calls == []


POOLS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 3), (3, 3), (0, 0)), ((5, 3), (2, 1), (2, 1)), ((8, 8), (8, 8), (0, 0))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_avg_pool_equals_torch_bit_for_bit(dtype):
    """lookup.avg_pool (the pooling the compiled lookup fuses) gives F.avg_pool2d's values bit
    for bit (count_include_pad=True), eager and compiled."""
    x = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(5), dtype=dtype) * 3
    x8 = x[..., :8, :8].contiguous()
    for kernel, stride, padding in POOLS:
        z = x8 if kernel == (8, 8) else x
        ref = nn.functional.avg_pool2d(z, kernel, stride, padding, count_include_pad=True)
        got = lookup.avg_pool(z, kernel, stride, padding)
        assert got.shape == ref.shape and torch.equal(got, ref), (kernel, stride, padding)
    if dtype == torch.float32:  # compiled: float64 in test_fused_pooling_equals_the_eager_twin
        code, pools = SCTTFSCode(4, *KERNEL_PAIRS["table1-cifar10"]), (POOLS[0], POOLS[3])
        fn = torch.compile(lookup._lookup_function(pools), dynamic=True)
        tables = lookup.lookup_tables(code, dtype, "cpu")
        got, out, n, pooled = fn([x], tables["bounds_c"], tables["z_signed_c"], (), False)
        z, _, _, ref = encode_layer(code, [x], pools=pools)  # eager: F.avg_pool2d
        assert out == [] and n is None and len(pooled) == len(ref) == 2 and torch.equal(got, z)
        assert all(torch.equal(a, b) for a, b in zip(pooled, ref))


def test_fused_pooling_equals_the_eager_twin(monkeypatch):
    """A spiking layer read through two different poolings and directly: the compiled twin
    (poolings fused into the layer's lookup; not for a recorded layer) equals the eager twin and
    the loop, bit for bit, in float32 and float64, with and without recording."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 4, 3, padding=1)
            self.c2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
            self.f1 = nn.Linear(4 * 16, 10)
            self.f2 = nn.Linear(4 * 16, 10)
            self.f3 = nn.Linear(4 * 16, 10)

        def forward(self, x):
            a = torch.relu(self.c1(x))
            b = torch.relu(self.c2(a))
            p1 = torch.flatten(nn.functional.avg_pool2d(a, 2), 1)
            p2 = torch.flatten(nn.functional.avg_pool2d(a, 3, 2, 1), 1)
            return self.f1(p1) + self.f2(p2) + self.f3(torch.flatten(b, 1))

    torch.manual_seed(0)
    model = Net().eval()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    snn = convert(model, (1, 8, 8), code=SCTTFSCode(6, *KERNEL_PAIRS["table1-cifar10"]))
    pools = engine.executor._pools(snn.graph)
    assert sorted(len(p) for p in pools.values()) == [2], pools  # the first layer, read through 2 poolings
    fused = []
    real = lookup.compiled_lookup
    monkeypatch.setattr(lookup, "compiled_lookup", lambda key=None, pools=(): fused.append(pools) or real(key, pools))
    for dtype, record in ((torch.float32, ()), (torch.float64, ()), (torch.float64, True)):
        module = engine.GraphModule(snn.graph, dtype)
        outs = {}
        for compiled, method in ((False, "lookup"), (True, "lookup"), (False, "stepwise")):
            module.compiled, module.method = compiled, method
            fused.clear()
            outs[compiled, method] = module(x, record=record)
            if compiled:
                assert sorted(map(len, fused)) == ([0, 0] if record else [0, 2]), fused  # per layer
        ref = outs[False, "stepwise"]
        for out in outs.values():
            assert torch.equal(out.output, ref.output)
            assert all(torch.equal(out.spike_counts[k], ref.spike_counts[k]) for k in ref.spike_counts)
            assert all(torch.equal(out.decoded[k], ref.decoded[k]) for k in ref.decoded)
