"""The ANNs that are converted: a digits CNN and MLP, the CIFAR VGG16 and ResNet20.

Every model is built only from layers the ANN->SNN importer converts exactly: ``Conv2d`` (groups
1), ``Linear``, ``BatchNorm1d/2d`` (folded into the preceding weight layer, eq. 24), ``ReLU``
(each ReLU becomes a spiking layer's code), ``AvgPool2d`` / ``AdaptiveAvgPool2d`` (linear, folded
into the next weight layer), ``Flatten``, ``Dropout`` and residual additions. There is no
max pooling (it has no exact SC-TTFS equivalent, SPEC section 2) and no in-place operation, and
every ReLU is its own ``nn.ReLU`` module, so that each spiking layer has a name.

Convolutions followed by BatchNorm have no bias (the BatchNorm shift plays its role and becomes
the folded bias).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "DigitsCNN",
    "DigitsMLP",
    "VGG16_CFG",
    "vgg16",
    "BasicBlock",
    "ResNet20",
    "resnet20",
    "MODELS",
    "build_model",
    "randomize_batchnorm",
]


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def _positive_int(name: str, value: object, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 (got {value!r}) for {owner}")
    return value


class DigitsCNN(nn.Module):
    """A VGG-style CNN for the 1x8x8 digits: deep enough that conversion errors accumulate.

    ``features``: for each entry of ``channels`` a 3x3 convolution (padding 1) + BatchNorm2d +
    ReLU, with ``AvgPool2d(2)`` after the convolutions listed in ``pool_after`` (by default after
    the 2nd and 4th: 8x8 -> 4x4 -> 2x2). ``classifier``: Flatten, then ``Linear + ReLU`` to
    ``hidden`` units (skipped when ``hidden`` is None), then ``Linear`` to the classes.

    With the defaults (5 convolutions, 6 spiking layers, about 0.10 M parameters) 20 epochs of
    Adam on the 1347 training digits take about 10 s on one CPU core (test accuracy ~99%).

    Parameters
    ----------
    channels : sequence of int
        Output channels of the convolutions, in order.
    num_classes : int
        Number of outputs.
    hidden : int or None
        Width of the hidden fully connected layer, or None for none.
    pool_after : sequence of int
        Indices into ``channels`` of the convolutions followed by ``AvgPool2d(2)``; at most 3
        (an 8x8 image halves to 1x1 after three).
    in_channels : int
        Channels of the input image.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 32, 64, 64),
        num_classes: int = 10,
        *,
        hidden: int | None = 128,
        pool_after: Sequence[int] = (1, 3),
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        owner = "DigitsCNN"
        channels = [_positive_int("each entry of channels", c, owner) for c in channels]
        if not channels:
            raise ValueError(f"channels must name at least one convolution (got {channels!r}) for {owner}")
        pool_after = sorted(set(int(i) for i in pool_after))
        if any(not 0 <= i < len(channels) for i in pool_after) or len(pool_after) > 3:
            raise ValueError(
                f"pool_after must hold at most 3 distinct indices into channels (0..{len(channels) - 1}) "
                f"(got {pool_after}) for {owner}"
            )
        layers: list[nn.Module] = []
        c_in = _positive_int("in_channels", in_channels, owner)
        for i, c_out in enumerate(channels):
            layers += _conv_bn_relu(c_in, c_out)
            if i in pool_after:
                layers.append(nn.AvgPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = 8 >> len(pool_after)
        flat = c_in * side * side
        head: list[nn.Module] = [nn.Flatten()]
        if hidden is not None:
            hidden = _positive_int("hidden", hidden, owner)
            head += [nn.Linear(flat, hidden), nn.ReLU()]
            flat = hidden
        head.append(nn.Linear(flat, _positive_int("num_classes", num_classes, owner)))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DigitsMLP(nn.Sequential):
    """The smallest convertible net: 64-``hidden``-``num_classes`` (Flatten, Linear, ReLU, Linear).

    Parameters
    ----------
    hidden : int
        Width of the hidden (spiking) layer.
    num_classes : int
        Number of outputs.
    in_features : int
        Pixels per image (8x8 digits: 64).
    """

    def __init__(self, hidden: int = 128, num_classes: int = 10, *, in_features: int = 64) -> None:
        owner = "DigitsMLP"
        super().__init__(
            nn.Flatten(),
            nn.Linear(
                _positive_int("in_features", in_features, owner), _positive_int("hidden", hidden, owner)
            ),
            nn.ReLU(),
            nn.Linear(hidden, _positive_int("num_classes", num_classes, owner)),
        )


#: VGG16 configuration: output channels of the 13 convolutions, "M" = 2x2 pooling (here average).
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def vgg16(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """VGG16 for 32x32 images (the paper's CIFAR network), with average instead of max pooling.

    ``features``: the 13 3x3 convolutions of :data:`VGG16_CFG`, each with BatchNorm2d + ReLU, and
    ``AvgPool2d(2)`` at every "M" (32x32 -> 1x1). ``classifier``: Flatten + ``Linear(512,
    num_classes)``, the usual CIFAR head (no 4096-wide layers, no dropout: BatchNorm regularizes
    enough, and every extra layer is one more window of latency). About 14.7 M parameters.

    Parameters
    ----------
    num_classes : int
        Number of outputs (10 or 100 for CIFAR).
    in_channels : int
        Channels of the input image.
    """
    owner = "vgg16"
    layers: list[nn.Module] = []
    c_in = _positive_int("in_channels", in_channels, owner)
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.AvgPool2d(2))
        else:
            layers += _conv_bn_relu(c_in, v)
            c_in = v
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*layers))
    model.add_module(
        "classifier",
        nn.Sequential(nn.Flatten(), nn.Linear(c_in, _positive_int("num_classes", num_classes, owner))),
    )
    return model


class BasicBlock(nn.Module):
    """The ResNet basic block: ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``.

    The shortcut is the identity (an empty ``nn.Sequential``) when shape is kept, and a 1x1
    convolution with stride + BatchNorm (He et al.'s option B) when it changes. The addition is a
    residual add of the importer: the shortcut's spikes are delayed to meet the main branch's.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int
        Stride of ``conv1`` (and of the projection).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet20 for 32x32 images (He et al. 2016, section 4.2), with projection shortcuts.

    Stem: 3x3 convolution to 16 channels + BatchNorm + ReLU. Then 3 stages of 3
    :class:`BasicBlock` with 16, 32 and 64 channels; the first block of stages 2 and 3 has
    stride 2 and a 1x1 projection shortcut (option B, instead of the paper's zero-padding
    option A, which is not a convolution). Head: ``AdaptiveAvgPool2d(1)``, Flatten,
    ``Linear(64, num_classes)``. About 0.27 M parameters.

    Parameters
    ----------
    num_classes : int
        Number of outputs.
    in_channels : int
        Channels of the input image.
    blocks_per_stage : int
        3 for ResNet20 (depth ``6 n + 2``).
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, blocks_per_stage: int = 3) -> None:
        super().__init__()
        owner = "ResNet20"
        n = _positive_int("blocks_per_stage", blocks_per_stage, owner)
        self.conv1 = nn.Conv2d(_positive_int("in_channels", in_channels, owner), 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        stages = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(c_in, c_out, stride if b == 0 else 1))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, _positive_int("num_classes", num_classes, owner))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(self.flatten(self.pool(out)))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> ResNet20:
    """ResNet20 for CIFAR (see :class:`ResNet20`)."""
    return ResNet20(num_classes, in_channels=in_channels)


#: Model constructors by name; each takes ``num_classes`` as first argument.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "digits-cnn": lambda num_classes=10, **kw: DigitsCNN(num_classes=num_classes, **kw),
    "digits-mlp": lambda num_classes=10, **kw: DigitsMLP(num_classes=num_classes, **kw),
    "vgg16": vgg16,
    "resnet20": resnet20,
}


def build_model(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    """Build a model by name: ``"digits-cnn"``, ``"digits-mlp"``, ``"vgg16"`` or ``"resnet20"``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    num_classes : int
        Number of outputs.
    **kwargs
        Passed to the constructor (e.g. ``channels=`` for ``"digits-cnn"``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes, **kwargs)


def randomize_batchnorm(
    model: nn.Module, seed: int = 0, *, affine: bool = False, generator: torch.Generator | None = None
) -> nn.Module:
    """Give every BatchNorm non-trivial statistics (running mean ~ 0.1 N(0, 1), running
    variance ~ U(0.5, 1.5)) and, with ``affine=True``, parameters (weight ~ U(0.5, 1.5), bias ~
    0.1 N(0, 1)), seeded; returns the model in eval mode. An untrained network's BatchNorm is
    the identity, which would make BN folding (eq. 24) untested: tests and benchmarks use this.
    ``generator`` (instead of ``seed``) continues a caller's random stream."""
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()
