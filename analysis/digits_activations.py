"""Layer activations of a briefly trained digits CNN, for the error analysis on real data.

``digits_activations(epochs=8, seed=0)`` trains :class:`scttfs_brian.models.DigitsCNN` with Adam
on the 1347 training digits (pixels in [0, 1]) and returns the test accuracy and, for every
``nn.ReLU`` module in order, the ReLU outputs on the 450 test digits (float64, flattened), keyed
by the module's name. Hooks on the ReLU modules read the activations; with ``torch`` seeded and
one thread the result is reproducible on one machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from scttfs_brian.data import digits
from scttfs_brian.models import DigitsCNN


def train_digits_cnn(epochs: int = 8, seed: int = 0, batch_size: int = 64, lr: float = 3e-3):
    """A DigitsCNN trained for ``epochs`` on the digits; returns ``(model, dataset)``."""
    torch.manual_seed(seed)
    data = digits(normalize=False)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            opt.zero_grad()
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    return model, data


def relu_activations(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """``{module name: ReLU output}`` for every ``nn.ReLU`` of ``model`` on input ``x``."""
    acts: dict[str, np.ndarray] = {}
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out, name=name: acts.__setitem__(name, out.detach().double().numpy())
        )
        for name, m in model.named_modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return {name: a.reshape(-1) for name, a in acts.items()}


def digits_activations(epochs: int = 8, seed: int = 0) -> tuple[float, dict[str, np.ndarray]]:
    """Test accuracy and per-layer ReLU activations on the test digits of a trained DigitsCNN."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, data = train_digits_cnn(epochs, seed)
        with torch.no_grad():
            acc = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
        return acc, relu_activations(model, data.x_test)
    finally:
        torch.set_num_threads(threads)
