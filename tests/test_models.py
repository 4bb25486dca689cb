"""The ANN models: shapes, sizes, and only layers the SC-TTFS importer converts."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch import nn

from scttfs_brian.models import MODELS, BasicBlock, DigitsCNN, DigitsMLP, build_model, resnet20, vgg16

#: name -> (input shape of one sample, classes used in the test)
CASES = {
    "digits-cnn": ((1, 8, 8), 10),
    "digits-mlp": ((1, 8, 8), 10),
    "vgg16": ((3, 32, 32), 100),
    "resnet20": ((3, 32, 32), 10),
}

#: Module types the ANN->SNN importer supports (containers aside).
CONVERTIBLE = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
)


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request):
    torch.manual_seed(0)
    shape, classes = CASES[request.param]
    return request.param, build_model(request.param, classes), shape, classes


def test_registry_names():
    assert set(MODELS) == set(CASES)


def test_output_shape(built):
    _, model, shape, classes = built
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, classes)


def test_only_convertible_layers(built):
    name, model, _, _ = built
    for mod_name, m in model.named_modules():
        if isinstance(m, (nn.Sequential, DigitsCNN, BasicBlock)) or m is model:
            continue
        assert isinstance(m, CONVERTIBLE), f"{name}.{mod_name} is a {type(m).__name__}"
        assert not isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d))
        if isinstance(m, nn.Conv2d):
            assert m.groups == 1
        if isinstance(m, nn.ReLU):
            assert not m.inplace


def test_each_relu_is_its_own_module(built):
    _, model, shape, _ = built
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len({id(m) for m in relus}) == len(relus)
    # and is called exactly once per forward, so each names one spiking layer
    gm = torch.fx.symbolic_trace(model)
    called = [
        n.target
        for n in gm.graph.nodes
        if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.ReLU)
    ]
    assert len(called) == len(set(called)) == len(relus)
    assert not any(n.op == "call_function" and "max_pool" in str(n.target) for n in gm.graph.nodes)


def test_symbolic_trace_matches_eager(built):
    _, model, shape, _ = built
    model.eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))


def test_eval_mode_is_deterministic(built):
    # in eval mode BatchNorm uses its running statistics and nothing is random: an image's output
    # does not depend on the other images of its batch
    _, model, shape, _ = built
    model.eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.cat([model(x[i : i + 1]) for i in range(3)]))


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts():
    assert 0.26e6 < _count(resnet20()) < 0.28e6  # He et al.: 0.27 M
    assert 14.6e6 < _count(vgg16()) < 14.8e6
    assert _count(DigitsMLP()) == 64 * 128 + 128 + 128 * 10 + 10
    assert _count(DigitsCNN()) < 0.2e6


def test_vgg16_has_13_convolutions_and_5_average_pools():
    model = vgg16()
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 5
    assert model.classifier[-1].in_features == 512


def test_resnet20_structure():
    model = resnet20(num_classes=100)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9
    projections = [b for b in blocks if len(b.shortcut) > 0]
    assert [(b.conv1.stride, b.conv1.out_channels) for b in projections] == [((2, 2), 32), ((2, 2), 64)]
    for b in projections:
        conv, bn = b.shortcut
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and isinstance(bn, nn.BatchNorm2d)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20  # 19 conv layers + the fc layer
    assert model.fc.out_features == 100


def test_digits_cnn_depth_and_pooling():
    model = DigitsCNN()
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 5
    x = model.features(torch.zeros(1, 1, 8, 8))
    assert x.shape == (1, 64, 2, 2)
    shallow = DigitsCNN(channels=(8, 8), hidden=None, pool_after=(0,))
    assert shallow(torch.zeros(4, 1, 8, 8)).shape == (4, 10)


def test_bad_arguments_are_explained():
    with pytest.raises(
        ValueError, match="unknown model 'vgg19'; known models: digits-cnn, digits-mlp, resnet20, vgg16"
    ):
        build_model("vgg19")
    with pytest.raises(ValueError, match="pool_after"):
        DigitsCNN(pool_after=(0, 1, 2, 3))
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 1 \(got 0\) for vgg16"):
        vgg16(num_classes=0)
