"""The converter: connectivity vs torch, exact BatchNorm folding (eq. 24), residual blocks,
error messages, kernel initialization and state_dict loading. Everything in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from scttfs_brian import PRESETS, SCTTFSCode, ThresholdKernel, TTFSCode
from scttfs_brian.conversion import (
    ann_activations,
    code_from_activations,
    convert,
    load_state_dict,
    quantize_tables,
)
from scttfs_brian.conversion.rules import RULES, SUPPORTED
from scttfs_brian.graph import Conv2d
from scttfs_brian.network import SpikingNetwork

CODE = SCTTFSCode(4, *PRESETS["cifar10"])


def relu_graph(graph, x: np.ndarray) -> np.ndarray:
    """The graph with plain ReLUs in place of the codes, by the numpy reference Projection.apply."""
    values = {"input": np.asarray(x, dtype=np.float64)}
    for layer in graph.layers:
        total = layer.bias.reshape((1,) + layer.shape).copy()
        for proj in layer.inputs:
            total = total + proj.apply(values[proj.source], graph.shape_of(proj.source))
        values[layer.name] = np.maximum(0.0, total) if layer.spiking else total
    return values[graph.output.name]


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 1.5 + 0.25)
            m.weight.data.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g, dtype=torch.float64) - 0.5)
    return model.eval()


def ann_out(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# --------------------------------------------------------------------------------------------
# Exact equivalence with plain ReLUs
# --------------------------------------------------------------------------------------------
def test_mlp_with_batchnorm_folds_exactly():
    torch.manual_seed(0)
    ann = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(8, 6, bias=False),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Linear(6, 3),
    ).double()
    randomize_bn(ann)
    snn = convert(ann, (3, 4), CODE)
    assert isinstance(snn, SpikingNetwork)
    g = snn.graph
    assert [l.name for l in g.layers] == ["3", "7", "output"]
    assert g.output.code is None and all(l.code == CODE for l in g.spiking_layers)
    x = np.random.default_rng(2).normal(size=(5, 3, 4))
    np.testing.assert_allclose(relu_graph(g, x), ann_out(ann, x), rtol=0, atol=1e-10)


def test_cnn_with_batchnorm_pooling_and_biases_folds_exactly():
    torch.manual_seed(1)
    ann = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 5, 3, padding=1),  # bias through padding
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.BatchNorm2d(5),  # after a ReLU: becomes a diagonal 1x1 convolution
        nn.AvgPool2d(2),
        nn.Conv2d(5, 6, 1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.ReLU(),  # ReLU of ReLU: folded
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).double()
    randomize_bn(ann)
    snn = convert(ann, (2, 8, 8), CODE)
    g = snn.graph
    assert [l.name for l in g.layers] == ["2", "6", "11", "output"]
    ops = [type(op).__name__ for op in g["6"].inputs[0].ops]
    assert ops == ["Conv2d", "Conv2d"]  # two convolutions between ReLUs: one projection
    assert [type(op).__name__ for op in g["11"].inputs[0].ops] == ["Conv2d", "AvgPool2d", "Conv2d"]
    assert [type(op).__name__ for op in g.output.inputs[0].ops] == ["AvgPool2d", "Flatten", "Dense"]
    x = np.random.default_rng(3).normal(size=(4, 2, 8, 8))
    np.testing.assert_allclose(relu_graph(g, x), ann_out(ann, x), rtol=0, atol=1e-10)


class BasicBlock(nn.Module):
    """ResNet basic block; ``shared_relu`` calls one nn.ReLU twice (torchvision style),
    otherwise F.relu (CIFAR ResNet style)."""

    def __init__(self, cin: int, cout: int, stride: int, shared_relu: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True) if shared_relu else None

    def forward(self, x):
        if self.relu is not None:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            return self.relu(out)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(torch.add(self.bn2(self.conv2(out)), self.shortcut(x)))


class TinyResNet(nn.Module):
    def __init__(self, shared_relu: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(BasicBlock(4, 4, 1, shared_relu))
        self.layer2 = nn.Sequential(BasicBlock(4, 6, 2, shared_relu))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layer2(self.layer1(out)))
        return self.fc(out.view(out.size(0), -1))


@pytest.mark.parametrize("shared_relu", [False, True])
def test_resnet_blocks_are_exact_with_delayed_shortcuts(shared_relu):
    torch.manual_seed(2)
    ann = randomize_bn(TinyResNet(shared_relu).double(), seed=4)
    g = convert(ann, (2, 8, 8), CODE).graph
    if shared_relu:
        names = ["bn1.relu", "layer1.0.relu", "layer1.0.relu_1", "layer2.0.relu", "layer2.0.relu_1", "output"]
    else:
        names = [
            "bn1.relu",
            "layer1.0.bn1.relu",
            "layer1.0.bn2.relu",
            "layer2.0.bn1.relu",
            "layer2.0.bn2.relu",
            "output",
        ]
    assert [l.name for l in g.layers] == names
    stem, b1_mid, b1_out, b2_mid, b2_out = names[:5]
    identity = g[b1_out]
    assert [(p.source, p.delay_windows) for p in identity.inputs] == [(b1_mid, 0), (stem, 1)]
    assert identity.inputs[1].ops == ()  # identity shortcut
    projection = g[b2_out]
    assert [(p.source, p.delay_windows) for p in projection.inputs] == [(b2_mid, 0), (b1_out, 1)]
    conv = projection.inputs[1].ops[0]
    assert isinstance(conv, Conv2d) and conv.weight.shape == (6, 4, 1, 1) and conv.stride == (2, 2)
    assert g.windows[b2_out] == 4 and g.latency_steps == 5 * CODE.T
    x = np.random.default_rng(5).normal(size=(3, 2, 8, 8))
    np.testing.assert_allclose(relu_graph(g, x), ann_out(ann, x), rtol=0, atol=1e-10)


def test_convert_leaves_the_model_untouched():
    ann = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).train()
    before = {k: v.clone() for k, v in ann.state_dict().items()}
    convert(ann, (4,), CODE)
    assert ann.training and ann[0].weight.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in ann.state_dict().items())


def test_input_code_and_code_dict():
    ann = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    ttfs = TTFSCode(4, ThresholdKernel(1.0, 0.0, 0.5))
    g = convert(ann, (4,), {"1": ttfs}, input_code=CODE).graph
    assert g.input_code == CODE and g["1"].code == ttfs and g.windows["1"] == 1
    with pytest.raises(ValueError, match=r"missing \['1'\], unknown \['fc1'\]"):
        convert(ann, (4,), {"fc1": CODE})
    with pytest.raises(ValueError, match="T=6 was given"):
        convert(ann, (4,), CODE, T=6)


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------
class Features(nn.Module):
    def __init__(self, middle: nn.Module):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), middle)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


@pytest.mark.parametrize(
    "middle, words",
    [
        (nn.MaxPool2d(2), ["MaxPool2d at 'features.2'", "nn.AvgPool2d"]),
        (nn.Sequential(nn.GELU(), nn.AvgPool2d(2)), ["GELU at 'features.2.0'", "nn.ReLU"]),
        (
            nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),
            ["Conv2d at 'features.2'", "groups=2", "groups=1"],
        ),
        (nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2), ["Conv2d at 'features.2'", "dilation=(2, 2)"]),
        (
            nn.Sequential(nn.AvgPool2d(2), nn.LayerNorm([4, 4, 4])),
            ["LayerNorm at 'features.2.1'", "BatchNorm"],
        ),
    ],
)
def test_unsupported_modules_are_named(middle, words):
    with pytest.raises(ValueError) as err:
        convert(Features(middle), (1, 8, 8), CODE)
    for w in words:
        assert w in str(err.value)


def test_unsupported_functions_are_named():
    class Block(nn.Module):
        def forward(self, x):
            return F.max_pool2d(x, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.block = Block()

        def forward(self, x):
            return self.block(torch.relu(self.conv(x))).flatten(1)

    with pytest.raises(
        ValueError, match=r"function torch\.nn\.functional\.max_pool2d .*Block\.forward of 'block'.*AvgPool2d"
    ):
        convert(Net(), (1, 8, 8), CODE)

    class Cat(nn.Module):
        def forward(self, x):
            return torch.cat([F.relu(x), x], 1)

    with pytest.raises(ValueError, match="concatenates"):
        convert(Cat(), (3,), CODE)


class Unknown(nn.Module):
    """A module no rule names."""

    def forward(self, x):
        return x * 2.0


def unknown_refusal() -> str:
    ann = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), Unknown(), nn.Linear(3, 2))
    with pytest.raises(ValueError) as err:
        convert(ann, (3,), CODE)
    return str(err.value)


def test_supported_list_and_refusal_come_from_the_rule_table():
    supported = [rule for rule in RULES if rule.supported]
    assert SUPPORTED == tuple(rule.describe() for rule in supported)
    text = unknown_refusal()
    assert text.startswith("function operator.mul (node 'mul' in Unknown.forward of '2') is not supported")
    for rule in supported:  # every supported module type is named in the refusal, by the table's text
        assert rule.describe() in text
        for module in rule.modules:
            assert f"nn.{module.__name__}" in text
    for rule in RULES:  # a rule either converts or advises, never both
        assert (rule.handler is None) == bool(rule.advice)


#: One module of each refused rule, applied to the (2, 4) output of a Linear(4, 4) + ReLU.
REFUSED_EXAMPLES = {
    "max pooling": nn.MaxPool1d(1),
    "clipping activations": nn.ReLU6(),
    "other activations": nn.GELU(),
    "per-input normalizations": nn.LayerNorm(4),
    "softmax": nn.Softmax(1),
    "attention and recurrence": nn.LSTM(4, 4),
    "other convolutions": nn.Conv1d(2, 2, 1),
}


@pytest.mark.parametrize("rule", [r for r in RULES if not r.supported and r.modules], ids=lambda r: r.label)
def test_each_refused_module_gets_its_rules_advice(rule):
    module = REFUSED_EXAMPLES[rule.label]
    assert isinstance(module, rule.modules)
    with pytest.raises(ValueError) as err:
        convert(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), module), (4,), CODE)
    assert str(err.value) == f"{type(module).__name__} at '2' {rule.advice}"


def test_max_pooling_is_refused_with_avg_pool_advice():
    ann = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 2))
    with pytest.raises(
        ValueError, match=r"MaxPool2d at '2' has no exact SC-TTFS equivalent.*use nn\.AvgPool2d"
    ):
        convert(ann, (1, 8, 8), CODE)


def test_forward_the_graph_cannot_express_is_refused():
    class MixesBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return F.relu(self.fc(x)).view(-1)

    with pytest.raises(ValueError, match=r"method Tensor\.view\(\) .* mixes the samples of a batch"):
        convert(MixesBatch(), (3,), CODE)

    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            y = self.fc(F.relu(x))
            z = F.relu(y, inplace=True)  # y is rectified too: tracing cannot see that
            return self.out(y + z)

    with pytest.raises(ValueError, match="does not reproduce the model"):
        convert(InPlace(), (3,), CODE)
    with pytest.raises(ValueError, match="Sequential has no ReLU"):
        convert(nn.Sequential(nn.Linear(3, 2)), (3,), CODE)


def test_wrong_input_shape_names_the_module():
    ann = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ValueError, match=r"input_shape \(1, 8, 8\) does not fit the model: Conv2d at '0'"):
        convert(ann, (1, 8, 8), CODE)
    with pytest.raises(ValueError, match=r"input_shape \(3, 9, 9\) does not fit the model: Linear at '3'"):
        convert(ann, (3, 9, 9), CODE)


def test_non_finite_weight_is_named():
    ann = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)))
    ann[2][0].running_var[1] = float("nan")
    with pytest.raises(
        ValueError, match=r"parameter '2.0.running_var' of BatchNorm1d '2.0' holds 1 non-finite"
    ):
        convert(ann, (4,), CODE)
    ann[2][0].running_var[1] = 1.0
    with torch.no_grad():
        ann[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"parameter '0.weight' of Linear '0'"):
        convert(ann, (4,), CODE)


def test_adaptive_pool_must_divide_evenly():
    ann = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32, 2)
    )
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d at '2' maps 6x6 to 4x4"):
        convert(ann, (1, 8, 8), CODE)


# --------------------------------------------------------------------------------------------
# Kernel initialization
# --------------------------------------------------------------------------------------------
def test_fast_quantizer_is_the_stepwise_rule():
    rng = np.random.default_rng(6)
    v = np.concatenate([rng.uniform(0, 4, 5000), CODE.table_e, CODE.table_e + CODE.table_c])
    for code in (
        CODE,
        SCTTFSCode(7, ThresholdKernel(1.3, 0.0, 0.4), ThresholdKernel(0.2, 0.0, 0.3)),
        TTFSCode(5, ThresholdKernel(2.0, 0.0, 0.7)),
    ):
        np.testing.assert_array_equal(quantize_tables(v, code.table_e, code.table_c), code.quantize(v))


@pytest.mark.parametrize("kind", ["sc-ttfs", "ttfs"])
def test_auto_codes_fit_the_activations(kind):
    torch.manual_seed(3)
    ann = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    with torch.no_grad():
        ann[2].weight.mul_(4.0)  # a second layer on another scale than the first
    x = torch.randn(300, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    T = 6
    g = convert(ann, (6,), "auto", calibration_data=[(x[:150], None), (x[150:], None)], T=T, kind=kind).graph
    acts = ann_activations(ann, x)
    assert set(acts) == {"1", "3"} and acts["3"].shape == (300, 16)
    with torch.no_grad():
        np.testing.assert_allclose(acts["1"], torch.relu(ann[0](x)).numpy(), rtol=0, atol=1e-12)
    naive = (
        SCTTFSCode(T, *PRESETS["cifar10"])
        if kind == "sc-ttfs"
        else TTFSCode(T, ThresholdKernel(1.0, 0.0, 1.0))
    )
    for name, a in acts.items():
        code = g[name].code
        assert isinstance(code, SCTTFSCode if kind == "sc-ttfs" else TTFSCode) and code.T == T
        p = np.percentile(a[a > 0], 99.9)
        assert p / 2 <= code.max_value <= 2 * p
        err = np.abs(a - code.quantize(a)).mean()
        assert err < 0.8 * np.abs(a - naive.quantize(a)).mean()
        assert code == code_from_activations(a, T, kind)  # deterministic


def layer_sample(seed: int = 0, n: int = 6000) -> np.ndarray:
    """Activations of a ReLU layer: 55 % zeros, the rest a gamma distribution with a long tail
    (a shape on which the former search, coordinate descent on (log theta(0), log k), stopped
    far from the optimum for TTFS at T = 2)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.55, 0.0, rng.gamma(1.2, 0.8, n))


def shifted_error(a: np.ndarray, code) -> float:
    """The fit's loss, computed here by the code's stepwise ``quantize``: the mean over all ``a``
    of ``|a - q(a + c)|`` for ``a > 0`` (0 for ``a <= 0``: silent), with the shift ``c >= 0``
    that makes the sum of ``q(a + c)`` equal to the sum of ``a``, over ``a > 0`` (bisection)."""
    v = a[a > 0]
    lo, hi = 0.0, 2.0 * v.max()
    for _ in range(60):
        c = 0.5 * (lo + hi)
        lo, hi = (c, hi) if code.quantize(v + c).sum() < v.sum() else (lo, c)
    return float(np.abs(v - code.quantize(v + 0.5 * (lo + hi))).sum() / a.size)


def shifted_errors_two_levels(a: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """:func:`shifted_error` of many two-level codes at once, for a fine grid: potentials from
    ``low`` on decode to ``low``, from ``high`` on to ``high`` (TTFS at T = 2, SC-TTFS at T = 1);
    counts and sums over the sorted potentials instead of the stepwise rule."""
    v = np.sort(a[a > 0])
    cs = np.concatenate([[0.0], np.cumsum(v)])

    def ranges(c):  # v[:i_low] decode to 0, v[i_low:i_high] to low, v[i_high:] to high
        return np.searchsorted(v, low - c), np.searchsorted(v, high - c)

    lo, hi = np.zeros(len(high)), np.full(len(high), 2.0 * v.max())
    for _ in range(60):
        c = 0.5 * (lo + hi)
        i_low, i_high = ranges(c)
        below = low * (i_high - i_low) + high * (v.size - i_high) < cs[-1]
        lo, hi = np.where(below, c, lo), np.where(below, hi, c)
    i_low, i_high = ranges(0.5 * (lo + hi))

    def abs_error(i0, i1, level):  # sum of |v - level| over v[i0:i1]
        m = np.clip(np.searchsorted(v, level), i0, i1)
        return level * (m - i0) - (cs[m] - cs[i0]) + (cs[i1] - cs[m]) - level * (i1 - m)

    total = cs[i_low] + abs_error(i_low, i_high, low) + abs_error(i_high, np.full_like(i_high, v.size), high)
    return total / a.size


def test_kernel_fit_reaches_the_fine_grid_optimum():
    """TTFS at T = 2 (and SC-TTFS at T = 1, the same two-level codebook): the search reaches the
    best code of a 120 x 120 grid over the whole constraint box, where the coordinate descent on
    (log theta(0), log k) of the former fit stopped at theta = (8.31, 1.04), loss 0.272: one
    level for nearly all activations."""
    a = layer_sample()
    top = np.percentile(a[a > 0], 99.9)
    assert top == pytest.approx(6.154, abs=1e-3)
    high = np.repeat(np.geomspace(top / 2, 2 * top, 120), 120)
    low = high * np.tile(np.geomspace(0.01, 0.999, 120), 120)
    grid = shifted_errors_two_levels(a, high, low)
    best = int(np.argmin(grid))
    assert grid[best] == pytest.approx(0.1725, abs=1e-4)
    grid_code = TTFSCode(2, ThresholdKernel(high[best], 0.0, float(np.log(high[best] / low[best]))))
    assert shifted_error(a, grid_code) == pytest.approx(grid[best], rel=1e-6)  # the same loss
    assert (high[best], low[best]) == pytest.approx((3.08, 1.26), abs=0.01)
    ttfs = code_from_activations(a, 2, "ttfs")
    assert shifted_error(a, ttfs) <= grid[best] + 1e-5
    np.testing.assert_allclose(ttfs.table_e, [top / 2, 1.256], atol=0.002)  # theta(0) at its bound
    old = TTFSCode(2, ThresholdKernel(8.31, 0.0, float(np.log(8.31 / 1.04))))
    assert shifted_error(a, old) == pytest.approx(0.272, abs=1e-3)
    # SC-TTFS at T = 1 decodes theta_e(0) or theta_e(0) + theta_c(0): the same optimum
    sc = code_from_activations(a, 1, "sc-ttfs")
    assert shifted_error(a, sc) == pytest.approx(shifted_error(a, ttfs), rel=1e-3)
    np.testing.assert_allclose([sc.max_value, sc.min_value], ttfs.table_e, atol=0.02)


@pytest.mark.parametrize("kind", ["ttfs", "sc-ttfs"])
def test_kernel_fit_is_no_worse_than_its_neighbours_kernels(kind):
    """At every T, the fitted kernels are at least as good, by the fit's own loss, as the
    kernels fitted at T - 1 and T + 1 used with window T (all within the constraints)."""
    a = layer_sample(1)
    codes = {T: code_from_activations(a, T, kind) for T in range(1, 7)}
    losses = {T: shifted_error(a, code) for T, code in codes.items()}
    for T in range(2, 6):
        for nb in (T - 1, T + 1):
            kernels = [codes[nb].encode] + ([codes[nb].calibrate] if kind == "sc-ttfs" else [])
            assert all(k.k * (T - 1) <= np.log(1e8) for k in kernels)  # feasible at T
            moved = SCTTFSCode(T, *kernels) if kind == "sc-ttfs" else TTFSCode(T, *kernels)
            assert losses[T] <= shifted_error(a, moved) + 1e-6, (T, nb)
    assert all(losses[T + 1] < losses[T] for T in range(1, 6))  # more steps, less error
    expected = {"ttfs": [0.2893, 0.1582, 0.1164], "sc-ttfs": [0.1583, 0.0768, 0.0489]}[kind]
    np.testing.assert_allclose([losses[1], losses[2], losses[3]], expected, atol=2e-4)


def test_code_from_activations_edge_cases():
    with pytest.raises(ValueError, match="all 10 activations are <= 0"):  # nothing to fit: refused
        code_from_activations(np.zeros(10), 4)
    with pytest.raises(ValueError, match="non-finite"):
        code_from_activations(np.array([1.0, np.nan]), 4)
    with pytest.raises(ValueError, match="kind"):
        code_from_activations(np.ones(3), 4, kind="ttfs2")
    ann = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with pytest.raises(ValueError, match="needs calibration_data"):
        convert(ann, (2,), "auto")


# --------------------------------------------------------------------------------------------
# state_dict files
# --------------------------------------------------------------------------------------------
def test_load_state_dict_round_trip(tmp_path):
    src = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    randomize_bn(src.double(), seed=7)
    path = tmp_path / "weights.pt"
    torch.save(src.state_dict(), path)
    dst = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).double()
    assert load_state_dict(dst, path) is dst
    assert all(
        torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True)
    )
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    load_state_dict(dst, path)
    x = np.random.default_rng(8).normal(size=(3, 4))
    np.testing.assert_allclose(
        relu_graph(convert(dst, (4,), CODE).graph, x), ann_out(src.eval(), x), atol=1e-10
    )


def test_load_state_dict_refuses_pickled_objects_and_mismatches(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 2), path)  # a whole pickled module, not a state_dict
    with pytest.raises(ValueError, match="weights_only=True"):
        load_state_dict(nn.Linear(2, 2), path)
    torch.save(nn.Linear(2, 3).state_dict(), path)
    with pytest.raises(ValueError, match="does not match Linear"):
        load_state_dict(nn.Linear(2, 2), path)


def test_load_state_dict_refuses_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(nn.Linear(2, 2).state_dict(), good)
    for name, data in [("truncated.pt", good.read_bytes()[:100]), ("text.pt", b"not a checkpoint")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match="weights_only=True") as err:
            load_state_dict(nn.Linear(2, 2), path)
        assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_state_dict(nn.Linear(2, 2), tmp_path / "absent.pt")
