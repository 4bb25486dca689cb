r"""ANN training, kernel initialization and the fine-tuning of section 3.4.

The path from a ReLU network to the final SC-TTFS network (section 3.4 of the paper)::

    ann = train_ann(model, dataset, epochs=..., lr=...)        # 0. an ordinary ANN
    codes = init_codes(ann, dataset.x_train, T=3)              # kernels from activation statistics
    twin = spiking_twin(ann, codes)                            # 1. the "pre-conversion SNN"
    fine_tune(twin, dataset, epochs=...)                       # 2. train kernels and BN (eqs. 20-23)
    ann2, codes2 = export(twin)
    snn = convert(ann2, dataset.input_shape, code=codes2)      # 3. fold BN (eq. 24): the final SNN

**Kernel initialization** (:func:`init_codes`). The paper initializes the kernels from the
distribution of each layer's ANN activations (Table 1 for CIFAR). Here every spiking layer gets
its own kernels, fitted by :func:`scttfs_brian.conversion.code_from_activations` to the ANN's
post-ReLU activations at that layer on (a subset of) the training images: both kernels are
searched (deterministically) to minimize the mean ``|a - q(a)|`` conversion error, which contains
all three error terms of eqs. 18-19, with ``beta = 0`` (only ``alpha * exp(beta)`` counts) and the
largest decodable value kept within a factor 2 of the 99.9th percentile of the activations.

**Pre-conversion SNN** (:func:`spiking_twin`). A deep copy of the ANN in which every ``nn.ReLU``
module is replaced by a :class:`~scttfs_brian.torch.SpikingActivation` holding trainable
``alpha, beta, k`` of both kernels. BatchNorm stays unfolded (its ``gamma`` and ``beta`` are
trained too) and runs in eval mode, i.e. with the ANN's running statistics, which are frozen: the
final network folds exactly these statistics (eq. 24), and batch statistics would make the
network seen in training differ from the one converted.

**Fine-tuning** (:func:`fine_tune`). Adam with cosine annealing of the learning rate (per step),
the loss of eq. 20 on the output layer's potentials (the softmax cross-entropy; see
:func:`fine_tune` on the log base) and the gradients of eqs. 21-23 (with the straight-through
gradient to the potentials, see :class:`~scttfs_brian.torch.SpikingActivation`). All other
parameters (conv / linear weights and biases) are frozen. After every optimizer step
``alpha`` and ``k`` are clamped to ``>= 1e-6`` so that the kernels stay valid
(:class:`~scttfs_brian.coding.ThresholdKernel` needs ``alpha > 0`` and ``k > 0``).

The kernels learn 10x slower than BatchNorm by default (``kernel_lr = lr / 10``). Eqs. 21-23
differentiate the decoded value ``theta(t)`` at *fixed* spike times, so they do not see that a
higher threshold delays a spike or silences the neuron: with the cross-entropy rewarding larger
outputs, they keep raising the thresholds. On the digits CNN, training the kernels alone at
``lr = 1e-2`` silenced the network within 3 epochs (accuracy 9.6 %, T = 2 and 4), while BatchNorm
alone at ``1e-2`` reached 98.2-98.7 %; BatchNorm at ``1e-2`` with kernels at ``1e-3`` was stable at
every T tried (the paper's ``1e-5`` for 100 epochs keeps the same drift small by its small steps).

**Determinism.** Training runs under ``torch.use_deterministic_algorithms(True)`` with the
seeds set, and batches are shuffled from ``seed + epoch``: on the CPU, the same seed (and the
same number of torch threads) gives the same weights. Both training functions accept a
``checkpoint`` callback (called after every epoch with the full training state) and a
``resume_from`` state, so an interrupted run continues from its last finished epoch and ends
with the weights an uninterrupted run would have had.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..coding import SCTTFSCode, TTFSCode, stepwise_spike_times
from ..conversion import ann_activations, code_from_activations
from ..data import Dataset, batches
from ..torch import SpikingActivation

__all__ = [
    "train_ann",
    "evaluate",
    "init_codes",
    "spiking_twin",
    "fine_tune",
    "export",
    "twin_spike_times",
    "trainable_parameters",
    "KERNEL_MIN",
    "PAPER_FINE_TUNE_LR",
    "FINE_TUNE_LR",
    "KERNEL_LR_FACTOR",
]

#: Lower bound of ``alpha`` and ``k`` after each fine-tuning step (kernels must stay valid).
KERNEL_MIN = 1e-6
#: The paper's initial fine-tuning learning rate (section 4.1: 100 epochs on CIFAR).
PAPER_FINE_TUNE_LR = 1e-5
#: Default ratio of the kernels' learning rate to the BatchNorm one (see :func:`fine_tune`).
KERNEL_LR_FACTOR = 0.1
#: Our default for short runs (BatchNorm; the kernels get a tenth): ~12 epochs of the 1347
#: digits bring the converted digits CNN to the ANN's accuracy (measured, see the README).
FINE_TUNE_LR = 1e-2

_OPTIMIZERS = ("adam", "sgd")


# --------------------------------------------------------------------------------------------
# Small pieces shared by both training loops
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seed torch and numpy and switch deterministic algorithms on; restore the flag after."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum} (got {value!r})")
    return int(value)


def _check_lr(lr: Any) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number (got {lr!r})")
    return float(lr)


def _check_dataset(dataset: Any) -> Dataset:
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"dataset must be a scttfs_brian.data.Dataset (got {type(dataset).__name__}); "
            "load one with scttfs_brian.data.digits() or cifar10(root)"
        )
    return dataset


def _progress(total: int, enabled: bool, desc: str, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="epoch", leave=False)


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point() and not _is_kernel_parameter(model, p):
            return p.dtype
    return torch.float32


def _is_kernel_parameter(model: nn.Module, p: torch.Tensor) -> bool:
    return any(p is q for m in model.modules() if isinstance(m, SpikingActivation) for q in m.parameters())


def _rng_state() -> torch.Tensor:
    return torch.get_rng_state().clone()


def _train_loop(
    model: nn.Module,
    params: list,
    dataset: Dataset,
    *,
    epochs: int,
    lr: float,
    optimizer: str,
    batch_size: int,
    seed: int,
    weight_decay: float,
    momentum: float,
    train_mode: bool,
    after_step: Callable[[], None] | None,
    progress: bool,
    desc: str,
    checkpoint: Callable[[dict], None] | None,
    resume_from: Mapping | None,
) -> dict:
    """Epochs of mini-batch cross-entropy training with cosine annealing (one scheduler step
    per optimizer step), checkpointing after every epoch."""
    n = len(dataset.x_train)
    steps_per_epoch = -(-n // batch_size)
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    history: dict[str, list] = {
        "loss": [],
        "lr": [],
        "epoch_loss": [],
        "train_accuracy": [],
        "test_accuracy": [],
    }
    start = 0
    dtype = _model_dtype(model)
    with _deterministic(seed):
        if resume_from is not None:
            start = int(resume_from["epoch"])
            if start > epochs:
                raise ValueError(f"the checkpoint is at epoch {start}, after the {epochs} epochs asked for")
            model.load_state_dict(resume_from["model"])
            opt.load_state_dict(resume_from["optimizer"])
            sched.load_state_dict(resume_from["scheduler"])
            torch.set_rng_state(resume_from["rng"])
            history = {k: list(v) for k, v in resume_from["history"].items()}
        bar = _progress(epochs, progress, desc, initial=start)
        for epoch in range(start, epochs):
            model.train(train_mode)
            total, correct, seen = 0.0, 0, 0
            for xb, yb in batches(
                dataset.x_train, dataset.y_train, batch_size, shuffle=True, seed=seed + epoch
            ):
                xb = xb.to(dtype)
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate (lr={lr})"
                    )
                loss.backward()
                opt.step()
                sched.step()
                if after_step is not None:
                    after_step()
                history["loss"].append(float(loss.detach()))
                history["lr"].append(float(sched.get_last_lr()[0]))
                total += float(loss.detach()) * len(xb)
                correct += int((out.argmax(1) == yb).sum())
                seen += len(xb)
            history["epoch_loss"].append(total / seen)
            history["train_accuracy"].append(correct / seen)
            history["test_accuracy"].append(evaluate(model, dataset.x_test, dataset.y_test))
            bar.update(1)
            bar.set_postfix(loss=f"{total / seen:.4f}", test=f"{history['test_accuracy'][-1]:.4f}")
            if checkpoint is not None:
                checkpoint(
                    {
                        "epoch": epoch + 1,
                        "model": copy.deepcopy(model.state_dict()),
                        "optimizer": copy.deepcopy(opt.state_dict()),
                        "scheduler": sched.state_dict(),
                        "rng": _rng_state(),
                        "history": {k: list(v) for k, v in history.items()},
                    }
                )
        bar.close()
    model.eval()
    return history


# --------------------------------------------------------------------------------------------
# ANN training
# --------------------------------------------------------------------------------------------
def train_ann(
    model: nn.Module,
    dataset: Dataset,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "adam",
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    checkpoint: Callable[[dict], None] | None = None,
    resume_from: Mapping | None = None,
) -> dict:
    """Train ``model`` (in place) on ``dataset.x_train`` with cross-entropy and cosine annealing.

    Parameters
    ----------
    model : nn.Module
        A ReLU network (e.g. :class:`~scttfs_brian.models.DigitsCNN`), trained in place and left
        in eval mode.
    dataset : Dataset
        Training and test split (:mod:`scttfs_brian.data`).
    epochs : int
        Passes over the training split.
    lr : float
        Initial learning rate; it decays to 0 along a cosine over all ``epochs`` (per step).
    optimizer : {"adam", "sgd"}
        Adam, or SGD with Nesterov momentum ``momentum``.
    batch_size : int
        Samples per step.
    seed : int
        Seeds torch (initial RNG state) and the shuffling (epoch ``e`` uses ``seed + e``).
        The model's initial weights are *not* drawn here: build the model after
        ``torch.manual_seed`` for a fully reproducible run.
    progress : bool
        Show a tqdm progress bar over epochs.
    weight_decay : float
        L2 penalty (Adam: coupled, as ``torch.optim.Adam``).
    checkpoint : callable, optional
        Called after every epoch with the training state: ``{"epoch", "model", "optimizer",
        "scheduler", "rng", "history"}`` (tensors and plain containers: ``torch.save`` it and
        read it back with ``torch.load(..., weights_only=True)``).
    resume_from : mapping, optional
        Such a state: training continues after its epoch, with its optimizer, schedule, RNG and
        history, and ends where an uninterrupted run would.

    Returns
    -------
    dict
        ``loss`` and ``lr`` per step, ``epoch_loss``, ``train_accuracy``, ``test_accuracy`` per
        epoch (lists of floats).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    dataset = _check_dataset(dataset)
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be 'adam' or 'sgd' (got {optimizer!r})")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0 (got {weight_decay!r})")
    return _train_loop(
        model,
        [p for p in model.parameters() if p.requires_grad],
        dataset,
        epochs=_check_positive_int("epochs", epochs),
        lr=_check_lr(lr),
        optimizer=optimizer,
        batch_size=_check_positive_int("batch_size", batch_size),
        seed=int(seed),
        weight_decay=float(weight_decay),
        momentum=float(momentum),
        train_mode=True,
        after_step=None,
        progress=progress,
        desc="ANN training",
        checkpoint=checkpoint,
        resume_from=resume_from,
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512) -> float:
    """Accuracy (fraction in ``[0, 1]``) of ``model`` on ``(x, y)``, in eval mode.

    The model's training/eval mode is restored afterwards. Inputs are cast to the model's dtype.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length (got {len(x)} and {len(y)})")
    if len(x) == 0:
        raise ValueError("x holds no samples")
    was_training = model.training
    model.eval()
    dtype = _model_dtype(model)
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size].to(dtype)).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


# --------------------------------------------------------------------------------------------
# Kernel initialization
# --------------------------------------------------------------------------------------------
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
    return {name: code_from_activations(a, T, kind) for name, a in acts.items()}


# --------------------------------------------------------------------------------------------
# The pre-conversion SNN
# --------------------------------------------------------------------------------------------
def _relu_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def spiking_twin(model: nn.Module, codes: Mapping[str, SCTTFSCode | TTFSCode]) -> nn.Module:
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
            "spiking_twin replaces nn.ReLU modules only: write each ReLU as its own nn.ReLU module"
        )
    missing = [n for n in relus if n not in codes]
    if missing:
        raise ValueError(f"no code for the nn.ReLU module(s) {missing}; pass a code for every ReLU")
    for name, code in codes.items():
        if not isinstance(code, (SCTTFSCode, TTFSCode)):
            raise TypeError(
                f"the code of '{name}' must be an SCTTFSCode or TTFSCode (got {type(code).__name__})"
            )
    twin = copy.deepcopy(model)
    for name in relus:
        _set_submodule(twin, name, SpikingActivation(codes[name]))
    return twin.eval()


def trainable_parameters(twin: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters fine-tuning trains: ``alpha, beta, k`` of every kernel and the BatchNorm
    ``weight`` (gamma) and ``bias`` (beta), by qualified name."""
    out = {}
    for mname, m in twin.named_modules():
        if isinstance(m, SpikingActivation) or isinstance(m, nn.modules.batchnorm._BatchNorm):
            for pname, p in m.named_parameters():
                out[f"{mname}.{pname}" if mname else pname] = p
    return out


def _is_kernel_name(name: str) -> bool:
    return ".encode." in name or ".calibrate." in name or name.startswith(("encode.", "calibrate."))


def _clamp_kernels(twin: nn.Module) -> None:
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, SpikingActivation):
                for kern in (m.encode, m.calibrate):
                    if kern is not None:
                        kern.alpha.clamp_(min=KERNEL_MIN)
                        kern.k.clamp_(min=KERNEL_MIN)


def fine_tune(
    twin: nn.Module,
    dataset: Dataset,
    *,
    epochs: int,
    lr: float = FINE_TUNE_LR,
    kernel_lr: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
    checkpoint: Callable[[dict], None] | None = None,
    resume_from: Mapping | None = None,
) -> dict:
    r"""Train the kernels and BatchNorm of a pre-conversion SNN (section 3.4), in place.

    Adam, cosine annealing of the learning rate to 0 over all steps, batches of ``batch_size``.
    Trained: ``alpha, beta, k`` of the encoding and calibration kernels of every layer (eqs.
    21-23) and the BatchNorm ``gamma, beta``; frozen: weights, biases and the BatchNorm running
    statistics (eval mode, see the module docstring). ``alpha`` and ``k`` are clamped to
    ``>= KERNEL_MIN`` after each step. The kernels get their own learning rate ``kernel_lr``
    (default ``lr * KERNEL_LR_FACTOR`` = ``lr / 10``; why: see the module docstring).

    Loss (eq. 20): the paper writes :math:`L_{CE} = -\sum_i y_i \log_2 v_i` on the output
    potentials ``v``; as the potentials can be negative, we take the cross-entropy of the
    softmax of ``v`` (natural log). The base of the logarithm only scales the loss (and the
    gradient) by ``1/ln 2``, which Adam's normalized steps do not see.

    Parameters
    ----------
    twin : nn.Module
        From :func:`spiking_twin`.
    dataset : Dataset
    epochs : int
    lr : float
        Initial learning rate of the BatchNorm parameters. The paper uses ``1e-5``
        (:data:`PAPER_FINE_TUNE_LR`) for 100 epochs on CIFAR; the default :data:`FINE_TUNE_LR`
        (``1e-2``) suits ~12 epochs on digits.
    kernel_lr : float, optional
        Initial learning rate of ``alpha, beta, k`` (default ``lr / 10``). Both decay along the
        same cosine. ``history["lr"]`` records the BatchNorm one.
    batch_size : int
        128 as in the paper.
    seed : int
        Seeds the shuffling (epoch ``e`` uses ``seed + e``).
    progress, checkpoint, resume_from
        As for :func:`train_ann`.

    Returns
    -------
    dict
        ``loss`` and ``lr`` per step, ``epoch_loss``, ``train_accuracy``, ``test_accuracy``
        per epoch.
    """
    if not isinstance(twin, nn.Module) or not any(isinstance(m, SpikingActivation) for m in twin.modules()):
        raise ValueError(
            "twin must be a pre-conversion SNN from spiking_twin() (it has no SpikingActivation)"
        )
    dataset = _check_dataset(dataset)
    train = trainable_parameters(twin)
    ids = {id(p) for p in train.values()}
    for p in twin.parameters():
        p.requires_grad_(id(p) in ids)
    lr = _check_lr(lr)
    kernel_lr = lr * KERNEL_LR_FACTOR if kernel_lr is None else _check_lr(kernel_lr)
    kern = [p for n, p in train.items() if _is_kernel_name(n)]
    groups = [
        {"params": [p for n, p in train.items() if not _is_kernel_name(n)]},
        {"params": kern, "lr": kernel_lr},
    ]
    return _train_loop(
        twin,
        [g for g in groups if g["params"]],
        dataset,
        epochs=_check_positive_int("epochs", epochs),
        lr=lr,
        optimizer="adam",
        batch_size=_check_positive_int("batch_size", batch_size),
        seed=int(seed),
        weight_decay=0.0,
        momentum=0.0,
        train_mode=False,  # BatchNorm keeps its running statistics (they are folded, eq. 24)
        after_step=lambda: _clamp_kernels(twin),
        progress=progress,
        desc="fine-tuning",
        checkpoint=checkpoint,
        resume_from=resume_from,
    )


def export(twin: nn.Module) -> tuple[nn.Module, dict[str, SCTTFSCode | TTFSCode]]:
    """Split a (fine-tuned) pre-conversion SNN into an ANN and its codes.

    Returns ``(ann, codes)``: ``ann`` is a deep copy of ``twin`` with every
    :class:`~scttfs_brian.torch.SpikingActivation` back to ``nn.ReLU`` (BatchNorm with the
    trained ``gamma, beta``, eval mode), ``codes`` the trained kernels by layer name. Then
    ``convert(ann, input_shape, code=codes)`` folds BatchNorm into the preceding weights (eq. 24)
    and gives the final SNN, which computes the same function as ``twin`` (in float64).
    """
    acts = [name for name, m in twin.named_modules() if isinstance(m, SpikingActivation)]
    if not acts:
        raise ValueError("twin has no SpikingActivation; export needs a network from spiking_twin()")
    ann = copy.deepcopy(twin)
    for p in ann.parameters():
        p.requires_grad_(False)  # read the kernels as plain numbers
    codes = {name: ann.get_submodule(name).export() for name in acts}
    for name in acts:
        _set_submodule(ann, name, nn.ReLU())
    for p in ann.parameters():
        p.requires_grad_(True)
    return ann.eval(), codes


@torch.no_grad()
def twin_spike_times(twin: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Spike times ``(t_enc, t_cal)`` of every spiking layer of ``twin`` on inputs ``x``
    (the stepwise rule on the potential each :class:`SpikingActivation` receives)."""
    out, hooks = {}, []
    for name, m in twin.named_modules():
        if isinstance(m, SpikingActivation):

            def hook(mod, args, _res, name=name):
                tab_e, tab_c = mod.tables()
                out[name] = stepwise_spike_times(args[0], tab_e, tab_c)

            hooks.append(m.register_forward_hook(hook))
    was_training = twin.training
    twin.eval()
    try:
        twin(torch.as_tensor(x).to(_model_dtype(twin)))
    finally:
        for h in hooks:
            h.remove()
        twin.train(was_training)
    return out
