r"""The "pre-conversion SNN" of section 3.4: the ANN with each ReLU replaced by its layer's code.

The path from a ReLU network to the final SC-TTFS network (section 3.4 of the paper)::

    ann = train_ann(model, dataset, epochs=..., lr=...)        # 0. an ordinary ANN
    codes = init_codes(ann, dataset.x_train, T=3)              # kernels from activation statistics
    spiking = spiking_ann(ann, codes)                          # 1. the "pre-conversion SNN"
    correct_biases(spiking, ann, dataset.x_train[:512])        # (optional) unbiased quantization
    fine_tune(spiking, dataset, teacher=ann, epochs=...)       # 2. train kernels and BN
    ann2, codes2 = export(spiking)
    snn = convert(ann2, dataset.input_shape, code=codes2)      # 3. fold BN (eq. 24): the final SNN

A *spiking ANN* is an ordinary ``nn.Module`` (trained with torch) that computes, in float64, what
the converted network computes; it is not an engine (the torch engine runs converted graphs).

**Kernel initialization** (:func:`init_codes`). The paper initializes the kernels from the
distribution of each layer's ANN activations (Table 1 for CIFAR). Here every spiking layer gets
its own kernels, fitted by :func:`scttfs_brian.conversion.code_from_activations` to the ANN's
post-ReLU activations at that layer on (a subset of) the training images: both kernels are
searched (deterministically) to minimize the error the bias correction cannot remove: the mean
``|a - q(a + c)|`` over the positive activations, ``c`` the shift that matches the mean decoded
value to the mean activation (both codes round down, so the plain mean ``|a - q(a)|`` is mostly
the code's mean bias), with ``beta = 0`` (only ``alpha * exp(beta)`` counts) and the largest
decodable value kept within a factor 2 of the 99.9th percentile of the activations.

**The spiking ANN** (:func:`spiking_ann`). A deep copy of the ANN in which every ``nn.ReLU``
module is replaced by a :class:`~scttfs_brian.torch.SpikingActivation` holding trainable
``alpha, beta, k`` of both kernels. BatchNorm stays unfolded (its ``gamma`` and ``beta`` can be
trained) and runs in eval mode, i.e. with the ANN's running statistics, which are frozen: the
final network folds exactly these statistics (eq. 24), and batch statistics would make the
network seen in training differ from the one converted. :func:`with_window` gives the same
network with another window ``T`` (the kernels kept), the start of fine-tuning at a neighbouring
``T``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..coding import SCTTFSCode, TTFSCode, stepwise_spike_times
from ..conversion import ann_activations, codes_from_activations
from ..torch import SpikingActivation
from .loop import check_positive_int, model_dtype

__all__ = [
    "init_codes",
    "spiking_ann",
    "with_window",
    "spiking_ann_from_state",
    "trainable_parameters",
    "spike_times",
    "KERNEL_MIN",
]

#: Lower bound of ``alpha`` and ``k`` after each fine-tuning step (kernels must stay valid).
KERNEL_MIN = 1e-6


def init_codes(
    model: nn.Module,
    x: Any,
    T: int,
    kind: str = "sc-ttfs",
    *,
    max_images: int = 512,
) -> dict[str, SCTTFSCode | TTFSCode]:
    """Per-layer kernels fitted to the ANN's activations (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        The trained ANN.
    x : tensor
        Images whose activations set the kernels (training images: the test split stays unseen);
        the first ``max_images`` are used.
    T : int
        Window length in steps.
    kind : {"sc-ttfs", "ttfs"}
        SC-TTFS (two kernels) or the TTFS baseline (one kernel).

    Returns
    -------
    dict
        ``{layer_name: code}`` for every spiking layer of the converted graph, names as the
        importer gives them (an ``nn.ReLU``'s qualified module name).
    """
    acts = ann_activations(model, torch.as_tensor(x)[:max_images])
    return codes_from_activations(acts, T, kind)


def _relu_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def spiking_ann(model: nn.Module, codes: Mapping[str, SCTTFSCode | TTFSCode]) -> nn.Module:
    """The "pre-conversion SNN" of section 3.4: a deep copy of ``model`` with every ``nn.ReLU``
    replaced by a :class:`~scttfs_brian.torch.SpikingActivation` of its layer's code.

    Parameters
    ----------
    model : nn.Module
        The trained ANN. Its ReLUs must be ``nn.ReLU`` modules, each called once (as in every
        model of :mod:`scttfs_brian.models`); functional ``F.relu`` cannot be replaced.
    codes : mapping
        ``{relu_module_name: code}`` for every ``nn.ReLU`` module (e.g. from :func:`init_codes`:
        the importer names a spiking layer after its ``nn.ReLU`` module).

    Returns
    -------
    nn.Module
        The copy, in eval mode (BatchNorm uses its running statistics), with the ANN's dtype for
        weights and float64 kernels. ``model`` is not modified.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    relus = _relu_names(model)
    unknown = sorted(set(codes) - set(relus))
    if unknown:
        modules = {name: type(m).__name__ for name, m in model.named_modules()}
        what = ", ".join(f"'{n}' ({modules.get(n, 'no such module')})" for n in unknown)
        raise ValueError(
            f"codes name layers that are not nn.ReLU modules of {type(model).__name__}: {what}; "
            "spiking_ann replaces nn.ReLU modules only: write each ReLU as its own nn.ReLU module"
        )
    missing = [n for n in relus if n not in codes]
    if missing:
        raise ValueError(f"no code for the nn.ReLU module(s) {missing}; pass a code for every ReLU")
    for name, code in codes.items():
        if not isinstance(code, (SCTTFSCode, TTFSCode)):
            raise TypeError(
                f"the code of '{name}' must be an SCTTFSCode or TTFSCode (got {type(code).__name__})"
            )
    spiking = copy.deepcopy(model)
    for name in relus:
        set_submodule(spiking, name, SpikingActivation(codes[name]))
    return spiking.eval()


def with_window(spiking: nn.Module, T: int) -> nn.Module:
    """A deep copy of the spiking ANN ``spiking`` whose layers all encode in windows of ``T``
    steps, with the same kernels (and BatchNorm).

    A kernel table at ``T + 1`` extends the one at ``T`` by one smaller threshold, so every value
    decodable at ``T`` stays decodable: the network found at ``T`` is a start at ``T + 1`` that
    does not lose what was learnt (:func:`~scttfs_brian.training.fine_tune_windows` uses it).
    """
    T = check_positive_int("T", T)
    acts = [m for m in spiking.modules() if isinstance(m, SpikingActivation)]
    if not acts:
        raise ValueError("spiking has no SpikingActivation; with_window needs a network from spiking_ann()")
    out = copy.deepcopy(spiking)
    for m in out.modules():
        if isinstance(m, SpikingActivation):
            m.T = T
    return out


def spiking_ann_from_state(model: nn.Module, kind: str, T: int, state: Mapping[str, Any]) -> nn.Module:
    """The float64 spiking ANN of ``model`` with codes of ``kind`` (``"sc-ttfs"`` or ``"ttfs"``) at
    window ``T``, holding ``state`` (a ``state_dict`` of such a network, e.g. saved after
    fine-tuning: kernels, BatchNorm and weights); in eval mode."""
    from ..coding import ThresholdKernel

    k = ThresholdKernel(1.0, 0.0, 1.0)  # placeholders: the state sets every kernel
    code = SCTTFSCode(T, k, k) if kind == "sc-ttfs" else TTFSCode(T, k)
    net = spiking_ann(model, dict.fromkeys(_relu_names(model), code)).double()
    net.load_state_dict(state)
    return net.eval()


def trainable_parameters(spiking: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters fine-tuning trains: ``alpha, beta, k`` of every kernel and the BatchNorm
    ``weight`` (gamma) and ``bias`` (beta), by qualified name."""
    out = {}
    for mname, m in spiking.named_modules():
        if isinstance(m, SpikingActivation) or isinstance(m, nn.modules.batchnorm._BatchNorm):
            for pname, p in m.named_parameters():
                out[f"{mname}.{pname}" if mname else pname] = p
    return out


def is_kernel_name(name: str) -> bool:
    return ".encode." in name or ".calibrate." in name or name.startswith(("encode.", "calibrate."))


def clamp_kernels(spiking: nn.Module) -> None:
    with torch.no_grad():
        for m in spiking.modules():
            if isinstance(m, SpikingActivation):
                for kern in (m.encode, m.calibrate):
                    if kern is not None:
                        kern.alpha.clamp_(min=KERNEL_MIN)
                        kern.k.clamp_(min=KERNEL_MIN)


@torch.no_grad()
def spike_times(spiking: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Spike times ``(t_enc, t_cal)`` of every spiking layer of ``spiking`` on inputs ``x``
    (the stepwise rule on the potential each :class:`SpikingActivation` receives)."""
    out, hooks = {}, []
    for name, m in spiking.named_modules():
        if isinstance(m, SpikingActivation):

            def hook(mod, args, _res, name=name):
                tab_e, tab_c = mod.tables()
                out[name] = stepwise_spike_times(args[0], tab_e, tab_c)

            hooks.append(m.register_forward_hook(hook))
    was_training = spiking.training
    spiking.eval()
    try:
        spiking(torch.as_tensor(x).to(model_dtype(spiking)))
    finally:
        for h in hooks:
            h.remove()
        spiking.train(was_training)
    return out
