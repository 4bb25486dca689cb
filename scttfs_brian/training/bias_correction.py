r"""Conversion without fine-tuning: bias correction of the expected quantization error.

Both codes round *down*: a neuron whose potential ``v`` lies between two decodable values decodes
to the lower one (the first threshold below ``v``, eqs. 9-13), so every spiking layer passes on
less than the ANN's activation, on average, and the next layer's potentials are shifted. Over the
six spiking layers of the digits CNN the shifts add up: with kernels from activations alone,
SC-TTFS needs ``T`` = 8-12 before the converted network predicts what the ANN predicts.

:func:`correct_biases` removes the shift layer by layer, on a batch of training images, in the
order the layers run: with every earlier layer already spiking (and corrected), it measures the
potentials ``v`` that reach layer ``l`` and adds to the bias in front of it (the BatchNorm ``beta``,
or the conv / linear bias) the per-channel offset ``c`` for which the mean decoded value equals the
mean ANN activation:

.. math:: \overline{q_l(v + c)} = \overline{\max(0, a_l)}, \qquad \text{per channel,}

``a_l`` the ANN's potential at the same ReLU. The mean decoded value is non-decreasing in ``c``, so
``c`` is found by bisection. This is the bias correction of quantized networks (Nagel et al., 2019,
"Data-free quantization through weight equalization and bias correction"), applied to the spike
code; the paper (section 3.4) fine-tunes instead. The correction only moves biases, so the
corrected network converts (:func:`~scttfs_brian.training.export`, then
:func:`~scttfs_brian.convert`) like any other, and it is a better start for fine-tuning.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..torch import SpikingActivation
from .loop import check_positive_int, model_dtype
from .spiking import init_codes, spiking_ann

__all__ = ["correct_biases", "bias_corrected"]

_BIASED = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


def _capture(model: nn.Module, kind: type, x: torch.Tensor) -> tuple[dict, dict]:
    """Inputs of every ``kind`` module on ``x`` and, for each, the name of the leaf module whose
    output it is (the module holding the bias in front of it), or None."""
    inputs, feeders, last, hooks = {}, {}, {}, []
    leaves = {n: m for n, m in model.named_modules() if not list(m.children()) and not isinstance(m, kind)}
    for name, m in leaves.items():
        hooks.append(m.register_forward_hook(lambda mod, a, out, name=name: last.__setitem__(id(out), name)))
    for name, m in model.named_modules():
        if isinstance(m, kind):

            def pre(mod, args, name=name):
                inputs[name] = args[0].detach()
                feeders[name] = last.get(id(args[0]))

            hooks.append(m.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return inputs, feeders


def _offsets(act: SpikingActivation, v: torch.Tensor, target: torch.Tensor, iterations: int) -> torch.Tensor:
    """Per-channel ``c`` with mean ``act(v + c)`` = ``target`` (bisection; channel axis 1).

    A channel the ANN never activates on these inputs (``target = 0``) is shifted down only as far
    as needed to silence it (never up): any lower offset would meet the target too, but would also
    silence the neuron on inputs where the ANN does activate it."""
    dims = [0, *range(2, v.dim())]
    shape = [1, -1] + [1] * (v.dim() - 2)
    silent = target <= 0
    with torch.no_grad():
        tab_e, tab_c = act.tables()
        top = float(tab_e[0] + (tab_c[0] if tab_c is not None else 0.0))
        span = float(v.abs().amax()) + top
        lo = torch.full_like(target, -span)
        hi = torch.full_like(target, span)
        for _ in range(iterations):
            mid = (lo + hi) / 2
            mean = act(v + mid.view(shape)).mean(dims)
            low = (mean < target) | (silent & (mean <= 0))  # silent: the largest c that stays silent
            lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    c = (lo + hi) / 2
    return torch.where(silent, torch.minimum(lo, torch.zeros_like(lo)), c)


def correct_biases(
    spiking: nn.Module, ann: nn.Module, x: Any, *, iterations: int = 24, search_images: int = 256
) -> dict:
    """Correct, in place, the biases in front of every spiking layer of ``spiking`` so that each
    layer's mean decoded value equals the ANN's mean activation (see the module docstring).

    Parameters
    ----------
    spiking : nn.Module
        A spiking ANN from :func:`~scttfs_brian.training.spiking_ann` of ``ann``; its biases are
        changed in place.
    ann : nn.Module
        The ANN (not modified).
    x : tensor
        Inputs on which the means are taken: training images (the test split stays unseen).
    iterations : int
        Bisection steps (24 narrow the search interval to ``6e-8`` of its width).
    search_images : int
        The bisection evaluates the layer on the first ``search_images`` inputs only (the code's
        stepwise rule on every candidate offset is the cost); the target means use all of ``x``.

    Returns
    -------
    dict
        ``{layer: module_name}``: the module whose bias was corrected in front of each spiking
        layer, or None where there is none (the input of the layer is not the output of a
        Conv / Linear / BatchNorm module with a bias, e.g. a sum of branches): that layer keeps
        its bias.
    """
    iterations = check_positive_int("iterations", iterations)
    search_images = check_positive_int("search_images", search_images)
    dtype = model_dtype(spiking)
    x = torch.as_tensor(x).to(dtype)
    reference = ann if model_dtype(ann) == dtype else _as_dtype(ann, dtype)
    targets, _ = _capture(reference.eval(), nn.ReLU, x)
    was_training = spiking.training
    spiking.eval()
    names = list(_capture(spiking, SpikingActivation, x)[0])  # in the order forward() runs them
    missing = [n for n in names if n not in targets]
    if missing:
        raise ValueError(
            f"the spiking layers {missing} have no nn.ReLU of the same name in the ANN; pass the ANN that "
            "spiking_ann() was built from"
        )
    corrected = {}
    for name in names:
        inputs, feeders = _capture(spiking, SpikingActivation, x)
        feeder = feeders.get(name)
        module = spiking.get_submodule(feeder) if feeder is not None else None
        if not isinstance(module, _BIASED) or getattr(module, "bias", None) is None:
            corrected[name] = None
            continue
        v = inputs[name]
        dims = [0, *range(2, v.dim())]
        target = torch.relu(targets[name]).mean(dims)
        c = _offsets(spiking.get_submodule(name), v[:search_images], target, iterations)
        with torch.no_grad():
            module.bias += c.reshape(module.bias.shape).to(module.bias.dtype)
        corrected[name] = feeder
    spiking.train(was_training)
    return corrected


def _as_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(dtype)


def bias_corrected(
    ann: nn.Module, x: Any, T: int, kind: str = "sc-ttfs", *, max_images: int = 512, dtype: Any = None
) -> nn.Module:
    """Kernels from activations (:func:`~scttfs_brian.training.init_codes`), then
    :func:`correct_biases`, on the first ``max_images`` of ``x``: the spiking ANN of the improved
    conversion without fine-tuning. ``dtype``: of its weights (default the ANN's; float64 computes
    exactly what the converted network computes)."""
    x = torch.as_tensor(x)[:max_images]
    spiking = spiking_ann(ann, init_codes(ann, x, T, kind, max_images=max_images))
    if dtype is not None:
        kernels = {
            id(p) for m in spiking.modules() if isinstance(m, SpikingActivation) for p in m.parameters()
        }
        for p in spiking.parameters():
            if id(p) not in kernels:
                p.data = p.data.to(dtype)
        for b in spiking.buffers():
            if b.is_floating_point():
                b.data = b.data.to(dtype)
    correct_biases(spiking, ann, x)
    return spiking
