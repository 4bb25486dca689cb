"""From a (fine-tuned) spiking ANN back to an ANN and its codes, ready for :func:`~scttfs_brian.convert`."""

from __future__ import annotations

import copy

from torch import nn

from ..coding import SCTTFSCode, TTFSCode
from ..torch import SpikingActivation
from .spiking import set_submodule

__all__ = ["export"]


def export(spiking: nn.Module) -> tuple[nn.Module, dict[str, SCTTFSCode | TTFSCode]]:
    """Split a (fine-tuned) spiking ANN into an ANN and its codes.

    Returns ``(ann, codes)``: ``ann`` is a deep copy of ``spiking`` with every
    :class:`~scttfs_brian.torch.SpikingActivation` back to ``nn.ReLU`` (BatchNorm with the
    trained ``gamma, beta``, eval mode), ``codes`` the trained kernels by layer name. Then
    ``convert(ann, input_shape, code=codes)`` folds BatchNorm into the preceding weights (eq. 24)
    and gives the final SNN, which computes the same function as ``spiking`` (in float64).
    """
    acts = [name for name, m in spiking.named_modules() if isinstance(m, SpikingActivation)]
    if not acts:
        raise ValueError("spiking has no SpikingActivation; export needs a network from spiking_ann()")
    ann = copy.deepcopy(spiking)
    for p in ann.parameters():
        p.requires_grad_(False)  # read the kernels as plain numbers
    codes = {name: ann.get_submodule(name).export() for name in acts}
    for name in acts:
        set_submodule(ann, name, nn.ReLU())
    for p in ann.parameters():
        p.requires_grad_(True)
    return ann.eval(), codes
