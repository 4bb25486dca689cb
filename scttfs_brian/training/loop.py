"""What every training loop of this package shares: determinism, argument checks, the progress
bar, and the dtype of a model's weights."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..torch import SpikingActivation

OPTIMIZERS = ("adam", "sgd")


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and numpy and switch deterministic algorithms on; restore the flag after."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum} (got {value!r})")
    return int(value)


def check_lr(lr: Any, name: str = "lr") -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name} must be a positive number (got {lr!r})")
    return float(lr)


def check_dataset(dataset: Any) -> Dataset:
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"dataset must be a scttfs_brian.data.Dataset (got {type(dataset).__name__}); "
            "load one with scttfs_brian.data.digits() or cifar10(root)"
        )
    return dataset


def progress_bar(total: int, enabled: bool, desc: str, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="epoch", leave=False)


def is_kernel_parameter(model: nn.Module, p: torch.Tensor) -> bool:
    return any(p is q for m in model.modules() if isinstance(m, SpikingActivation) for q in m.parameters())


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the weights (the kernels of a spiking ANN are float64 whatever the weights)."""
    for p in model.parameters():
        if p.is_floating_point() and not is_kernel_parameter(model, p):
            return p.dtype
    return torch.float32


def rng_state() -> torch.Tensor:
    return torch.get_rng_state().clone()
