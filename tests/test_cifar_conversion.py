"""The CIFAR models of models.py convert, and with a long window the SNN follows the ANN."""

import numpy as np
import pytest
import torch

from scttfs_brian import convert
from scttfs_brian.models import build_model, randomize_batchnorm


def _randomized(name):
    torch.manual_seed(0)
    return randomize_batchnorm(build_model(name, 10), 0)


@pytest.mark.parametrize("name, spiking, windows", [("resnet20", 19, 19), ("vgg16", 13, 13)])
def test_cifar_model_converts_and_approaches_the_ann(name, spiking, windows):
    model = _randomized(name)
    calib = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ann = model.double()(x.double()).numpy()
    errors = []
    for T in (4, 24):
        snn = convert(model, (3, 32, 32), code="auto", calibration_data=calib, T=T)
        g = snn.graph
        assert len(g.spiking_layers) == spiking and g.n_windows == windows
        assert g.output.shape == (10,) and g.latency_steps == windows * T
        out = snn.functional(x).output.numpy()
        assert out.shape == (4, 10)
        errors.append(np.abs(out - ann).mean() / np.abs(ann).mean())
    assert errors[1] < errors[0] and errors[1] < 0.1, errors
