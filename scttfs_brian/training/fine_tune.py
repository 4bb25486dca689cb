r"""Fine-tuning of the spiking ANN (section 3.4), aimed at reproducing the ANN.

**What is trained.** The kernels ``alpha, beta, k`` of every spiking layer (gradients of eqs.
21-23, straight-through to the potentials, see :class:`~scttfs_brian.torch.SpikingActivation`)
and the BatchNorm ``gamma, beta``, as in the paper; with ``weight_lr`` also the weights and biases
of the conv / linear layers (quantization-aware distillation; the study's setting, see below).
The BatchNorm running statistics stay frozen (they are folded into the weights by eq. 24). Adam,
cosine annealing of the learning rate per step, ``alpha`` and ``k`` clamped to ``>= KERNEL_MIN``
after each step.

**Objective: what differs from the paper, and why.** The paper trains on the labels with the
cross-entropy of eq. 20, 100 epochs at ``lr = 1e-5`` on CIFAR. Here the default objective is
*distillation*: the mean squared difference between the spiking ANN's outputs and the ANN's
outputs (``objective="distill"``), optionally plus a per-layer term matching each layer's decoded
values to the ANN's activations there (``layer_weight``). The goal of a conversion is to compute
what the ANN computes; on the 1347 digits, the label loss overfits (the network can fit the
training labels in other ways than the ANN does) and its results moved by up to a point between
seeds and machines. The label loss stays available (``objective="label"``: the softmax
cross-entropy of the output potentials, natural log; the paper's ``log2`` only scales the loss,
which Adam's normalized steps do not see).

**Model selection.** A validation split is carved from the *training* images (``validation``,
stratified, drawn from ``seed``): fine-tuning trains on the rest, and after every epoch (and
before the first) measures the agreement with the ANN on the validation images; the state with
the highest agreement (ties: the smallest mean ``|output - ANN output|``) is the result. The test
split is never read. Because the starting state is a candidate, fine-tuning never ends below its
start on the validation split.

**Neighbouring windows** (:func:`fine_tune_windows`). At each ``T`` of a sweep, fine-tuning starts
from the better (on the validation split) of the bias-corrected conversion at ``T``
(:func:`~scttfs_brian.training.bias_corrected`) and the network fine-tuned at the previous ``T``
of the sweep, run with the longer window (:func:`~scttfs_brian.training.with_window`): what was
learnt at a shorter window is not lost, so agreement does not fall as ``T`` grows.

**Weights, and the ANN's validation split.** Kernels and BatchNorm alone left the digits CNN at
T = 3 a few test images from the ANN (agreement 98.2-99.8 % over seeds): the output error that
remains is spread over every weight of a layer, which BatchNorm's per-channel scale and shift
cannot undo. Training the weights too (``weight_lr=1e-3``, a tenth of the kernels' rate at most)
lowered the mean ``|output - ANN output|`` at T = 3 by about a tenth and made the agreement at
T = 3 >= 99.5 % in 4 of 4 tuning seeds (100-103, never used by the study) against 2 of 4 without.
Model selection only works if the validation images are as new to the ANN as test images are:
train the ANN on :func:`without_validation` (the study and the demo do). On images the ANN was
trained on, its margins are large and every epoch agreed on all of them.

**Learning rates.** The kernels learn 10x slower than BatchNorm by default (``kernel_lr = lr /
10``). Eqs. 21-23 differentiate the decoded value ``theta(t)`` at *fixed* spike times, so they do
not see that a higher threshold delays a spike or silences the neuron: under the label loss,
training the kernels alone at ``lr = 1e-2`` silenced the digits CNN within 3 epochs, while
BatchNorm at ``1e-2`` with kernels at ``1e-3`` was stable at every ``T`` tried. Under
distillation the kernels can learn faster: the study (:mod:`scttfs_brian.pipeline.study`) uses
BatchNorm at ``3e-2`` and kernels at ``1e-2`` (on the digits CNN at T = 3, seed 0, these gave a
smaller validation output difference than ``1e-2`` / ``1e-3``; kernels at ``1e-1`` silenced
layers again, and model selection fell back to the first epoch).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset, batches
from ..torch import SpikingActivation
from .ann import agreement
from .bias_correction import bias_corrected
from .loop import (
    check_dataset,
    check_lr,
    check_positive_int,
    deterministic,
    model_dtype,
    progress_bar,
    rng_state,
)
from .spiking import clamp_kernels, is_kernel_name, trainable_parameters, with_window

__all__ = [
    "calibration_set",
    "fine_tune",
    "fine_tune_windows",
    "validation_split",
    "without_validation",
    "OBJECTIVES",
    "PAPER_FINE_TUNE_LR",
    "FINE_TUNE_LR",
    "KERNEL_LR_FACTOR",
]

#: The paper's initial fine-tuning learning rate (section 4.1: 100 epochs on CIFAR).
PAPER_FINE_TUNE_LR = 1e-5
#: Default ratio of the kernels' learning rate to the BatchNorm one (see the module docstring).
KERNEL_LR_FACTOR = 0.1
#: Our default for short runs on digits (BatchNorm; the kernels get a tenth).
FINE_TUNE_LR = 1e-2
#: ``"distill"``: match the ANN's outputs (default); ``"label"``: eq. 20 on the labels.
OBJECTIVES = ("distill", "label")


def validation_split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` into ``dataset.x_train``: a stratified ``fraction`` of the
    training images (per class, drawn from ``seed``) for model selection. The test split is not
    touched."""
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"the validation fraction must be in (0, 1) (got {fraction!r}); e.g. 0.2")
    y = np.asarray(dataset.y_train)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        val.append(rng.permutation(idx)[: max(1, int(round(fraction * len(idx))))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def calibration_set(dataset: Dataset, count: int, validation: float | None, seed: int = 0) -> torch.Tensor:
    """The training images that set the kernels and the bias correction: the first ``count`` of
    the training split less its validation part (:func:`validation_split` from ``seed``; all
    training images when ``validation`` is None). The study, the demo and
    :func:`fine_tune_windows` take them this way."""
    if validation is None:
        return dataset.x_train[:count]
    return dataset.x_train[validation_split(dataset, validation, seed)[0]][:count]


def without_validation(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """``dataset`` less the training images :func:`validation_split` holds out for model
    selection (same ``fraction`` and ``seed``); the test split is unchanged.

    Train the ANN on this when the spiking network will be fine-tuned with that validation split:
    the validation images are then as new to the ANN as the test images are, so the agreement
    measured on them (the model selection) sees the ANN's uncertain cases. On images the ANN was
    trained on, its margins are large and every epoch agrees on nearly all of them (in the digits
    study, 100 % on 270 validation images while the test agreement moved between 98.2 and 99.8 %).
    """
    import dataclasses

    train, _ = validation_split(dataset, fraction, seed)
    idx = torch.from_numpy(train)
    return dataclasses.replace(dataset, x_train=dataset.x_train[idx], y_train=dataset.y_train[idx])


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def _layer_outputs(model: nn.Module, kind: type) -> tuple[dict, list]:
    out, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, kind):
            hooks.append(m.register_forward_hook(lambda mod, a, res, name=name: out.__setitem__(name, res)))
    return out, hooks


class _Selection:
    """Validation measurements after every epoch and the best state so far."""

    def __init__(self, spiking, x_val, y_val, teacher_val):
        self.spiking, self.x, self.y, self.teacher = spiking, x_val, y_val, teacher_val
        self.best_key: tuple | None = None
        self.best_state: dict | None = None
        self.best_epoch = 0

    def measure(self, epoch: int, history: dict) -> None:
        out = _outputs(self.spiking, self.x)
        acc = float((out.argmax(1) == self.y).double().mean())
        history["validation_accuracy"].append(acc)
        if self.teacher is not None:
            a = agreement(out, self.teacher)
            history["validation_agreement"].append(a["agreement"])
            history["validation_output_diff"].append(a["mean_abs_output_diff"])
            key = (a["agreement"], -a["mean_abs_output_diff"])
        else:
            key = (acc,)
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch = key, epoch
            self.best_state = copy.deepcopy(self.spiking.state_dict())


def fine_tune(
    spiking: nn.Module,
    dataset: Dataset,
    *,
    epochs: int,
    teacher: nn.Module | None = None,
    objective: str = "distill",
    lr: float = FINE_TUNE_LR,
    kernel_lr: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    validation: float | None = 0.2,
    layer_weight: float = 0.0,
    mixup: float = 0.0,
    weight_lr: float | None = None,
    progress: bool = True,
    checkpoint: Callable[[dict], None] | None = None,
    resume_from: Mapping | None = None,
) -> dict:
    r"""Train the kernels and BatchNorm of a spiking ANN (section 3.4), in place.

    Parameters
    ----------
    spiking : nn.Module
        From :func:`~scttfs_brian.training.spiking_ann` (or
        :func:`~scttfs_brian.training.bias_corrected`); left in eval mode with the selected state.
    dataset : Dataset
        Only its training split is read.
    epochs : int
    teacher : nn.Module, optional
        The ANN. Needed by ``objective="distill"``; when given, model selection is on the
        agreement with it, else on the validation accuracy.
    objective : {"distill", "label"}
        Mean squared difference to the teacher's outputs, or eq. 20 on the labels (module
        docstring).
    lr : float
        Initial learning rate of the BatchNorm parameters (the paper: ``1e-5``,
        :data:`PAPER_FINE_TUNE_LR`, for 100 epochs on CIFAR).
    kernel_lr : float, optional
        Initial learning rate of ``alpha, beta, k`` (default ``lr * KERNEL_LR_FACTOR``).
    batch_size : int
        128 as in the paper.
    seed : int
        Seeds the validation split and the shuffling (epoch ``e`` uses ``seed + e``).
    validation : float or None
        Fraction of the training images held out for model selection; None trains on all of them
        and keeps the last epoch (the paper's procedure).
    layer_weight : float
        Weight of the per-layer term: the mean over spiking layers of
        :math:`\overline{(z_l - a_l)^2} / \overline{a_l^2}` (``z_l`` decoded values, ``a_l`` the
        teacher's activations). Needs a teacher whose ``nn.ReLU`` modules have the spiking
        layers' names.
    mixup : float
        With distillation: each training image is mixed with another of its batch,
        ``lam x_i + (1 - lam) x_j``, ``lam ~ Beta(mixup, mixup)``, and the target is the teacher's
        output on the mixture (0: no mixing). The teacher defines the target on any input, so
        mixtures add training points between the images.
    weight_lr : float, optional
        Also train the weights and biases of the conv / linear layers, at this initial learning
        rate (default: frozen, as in the paper).
    progress, checkpoint, resume_from
        As for :func:`~scttfs_brian.training.train_ann`; the state also holds the selection.

    Returns
    -------
    dict
        ``loss`` and ``lr`` per step, ``epoch_loss`` per epoch; ``validation_accuracy`` (and with a
        teacher ``validation_agreement``, ``validation_output_diff``) per epoch, entry 0 before
        training; ``selected_epoch`` (0 = the start).
    """
    if not isinstance(spiking, nn.Module) or not any(
        isinstance(m, SpikingActivation) for m in spiking.modules()
    ):
        raise ValueError("spiking must be a spiking ANN from spiking_ann() (it has no SpikingActivation)")
    dataset = _check_dataset_and_objective(dataset, objective, teacher, layer_weight, mixup)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_lr(lr)
    kernel_lr = lr * KERNEL_LR_FACTOR if kernel_lr is None else check_lr(kernel_lr, "kernel_lr")
    weight_lr = None if weight_lr is None else check_lr(weight_lr, "weight_lr")
    dtype = model_dtype(spiking)
    x_all, y_all = dataset.x_train.to(dtype), dataset.y_train
    if validation is None:
        train_idx, val_idx = np.arange(len(y_all)), None
    else:
        train_idx, val_idx = validation_split(dataset, validation, seed)
    x, y = x_all[train_idx], y_all[train_idx]
    ref = (
        None
        if teacher is None
        else (teacher if model_dtype(teacher) == dtype else copy.deepcopy(teacher).to(dtype))
    )
    if ref is not None:
        ref.eval()
    selection = None
    if val_idx is not None:
        teacher_val = None if ref is None else _outputs(ref, x_all[val_idx])
        selection = _Selection(spiking, x_all[val_idx], y_all[val_idx], teacher_val)
    opt = _optimizer(spiking, lr, kernel_lr, weight_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * -(-len(x) // batch_size)))
    history: dict = {"loss": [], "lr": [], "epoch_loss": [], "validation_accuracy": []}
    if teacher is not None:
        history.update(validation_agreement=[], validation_output_diff=[])
    loss_of = _loss(spiking, ref, objective, layer_weight)
    start = 0
    with deterministic(seed):
        if resume_from is not None:
            start = _resume(spiking, opt, sched, selection, resume_from, epochs)
            history = {k: (list(v) if isinstance(v, list) else v) for k, v in resume_from["history"].items()}
        elif selection is not None:
            selection.measure(0, history)
        bar = progress_bar(epochs, progress, "fine-tuning", initial=start)
        for epoch in range(start, epochs):
            spiking.eval()  # BatchNorm keeps its running statistics (they are folded, eq. 24)
            total, seen = 0.0, 0
            for idx, _ in batches(torch.arange(len(x)), y, batch_size, shuffle=True, seed=seed + epoch):
                opt.zero_grad(set_to_none=True)
                loss = loss_of(_mix(x[idx], mixup) if mixup else x[idx], y[idx])
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate (lr={lr})"
                    )
                loss.backward()
                opt.step()
                sched.step()
                clamp_kernels(spiking)
                history["loss"].append(float(loss.detach()))
                history["lr"].append(float(sched.get_last_lr()[0]))
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            history["epoch_loss"].append(total / seen)
            if selection is not None:
                selection.measure(epoch + 1, history)
            bar.update(1)
            if checkpoint is not None:
                checkpoint(_state(spiking, opt, sched, selection, history, epoch + 1))
        bar.close()
    if selection is not None:
        spiking.load_state_dict(selection.best_state)
        history["selected_epoch"] = selection.best_epoch
    else:
        history["selected_epoch"] = epochs
    for p in spiking.parameters():
        p.requires_grad_(True)
    spiking.eval()
    return history


def _optimizer(spiking: nn.Module, lr: float, kernel_lr: float, weight_lr: float | None):
    """Adam over BatchNorm (``lr``), the kernels (``kernel_lr``) and, with ``weight_lr``, the
    weights and biases; every other parameter is frozen."""
    train = trainable_parameters(spiking)
    ids = {id(p) for p in train.values()}
    weights = [] if weight_lr is None else [p for p in spiking.parameters() if id(p) not in ids]
    ids |= {id(p) for p in weights}
    for p in spiking.parameters():
        p.requires_grad_(id(p) in ids)
    groups = [
        {"params": [p for n, p in train.items() if not is_kernel_name(n)]},
        {"params": [p for n, p in train.items() if is_kernel_name(n)], "lr": kernel_lr},
        {"params": weights, "lr": weight_lr},
    ]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=lr)


def _check_dataset_and_objective(dataset, objective, teacher, layer_weight, mixup) -> Dataset:
    dataset = check_dataset(dataset)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be 'distill' or 'label' (got {objective!r})")
    if teacher is None and (objective == "distill" or layer_weight):
        raise ValueError(
            "objective='distill' (and layer_weight > 0) needs the ANN: pass teacher=ann, or use "
            "objective='label' for the paper's eq. 20 on the labels"
        )
    if teacher is not None and not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be the ANN, a torch.nn.Module (got {type(teacher).__name__})")
    if not layer_weight >= 0:
        raise ValueError(f"layer_weight must be >= 0 (got {layer_weight!r})")
    if not mixup >= 0 or (mixup and objective != "distill"):
        raise ValueError(f"mixup must be >= 0 and needs objective='distill' (got {mixup!r}, {objective!r})")
    return dataset


def _mix(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Each image mixed with another of the batch (mixup; weights from the torch RNG)."""
    lam = torch.distributions.Beta(alpha, alpha).sample((len(x),)).to(x.dtype)
    lam = lam.view(-1, *([1] * (x.dim() - 1)))
    return lam * x + (1 - lam) * x[torch.randperm(len(x))]


def _loss(spiking: nn.Module, teacher: nn.Module | None, objective: str, layer_weight: float):
    """``loss(x, y)`` of one batch (the teacher's outputs and activations computed on ``x``)."""

    def loss(xb, yb):
        z, hz = _layer_outputs(spiking, SpikingActivation) if layer_weight else ({}, [])
        a, ha = _layer_outputs(teacher, nn.ReLU) if layer_weight else ({}, [])
        try:
            out = spiking(xb)
            if teacher is not None:
                with torch.no_grad():
                    tb = teacher(xb)
        finally:
            for h in hz + ha:
                h.remove()
        main = F.cross_entropy(out, yb) if objective == "label" else F.mse_loss(out, tb)
        if not layer_weight:
            return main
        terms = [((z[n] - a[n]) ** 2).mean() / (a[n] ** 2).mean().clamp(min=1e-12) for n in z]
        return main + layer_weight * torch.stack(terms).mean()

    return loss


def _state(spiking, opt, sched, selection, history, epoch) -> dict:
    return {
        "epoch": epoch,
        "model": copy.deepcopy(spiking.state_dict()),
        "optimizer": copy.deepcopy(opt.state_dict()),
        "scheduler": sched.state_dict(),
        "rng": rng_state(),
        "history": {k: (list(v) if isinstance(v, list) else v) for k, v in history.items()},
        "best_state": None if selection is None else copy.deepcopy(selection.best_state),
        "best_key": None if selection is None else list(selection.best_key),
        "best_epoch": None if selection is None else selection.best_epoch,
    }


def _resume(spiking, opt, sched, selection, state: Mapping, epochs: int) -> int:
    start = int(state["epoch"])
    if start > epochs:
        raise ValueError(f"the checkpoint is at epoch {start}, after the {epochs} epochs asked for")
    spiking.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if selection is not None:
        selection.best_state = state["best_state"]
        selection.best_key = tuple(state["best_key"])
        selection.best_epoch = int(state["best_epoch"])
    return start


def fine_tune_windows(
    ann: nn.Module,
    dataset: Dataset,
    windows: Sequence[int],
    kind: str = "sc-ttfs",
    *,
    previous: tuple[int, nn.Module] | None = None,
    calibration_images: int = 512,
    dtype: torch.dtype = torch.float64,
    **kwargs: Any,
) -> Iterator[tuple[int, nn.Module, dict]]:
    """Fine-tune at each window of ``windows`` (increasing), each starting from the better of the
    bias-corrected conversion and the network of the previous window (module docstring).

    Parameters
    ----------
    ann : nn.Module
        The trained ANN (the teacher).
    dataset : Dataset
        Only the training split is read (the bias correction uses its non-validation images).
    windows : sequence of int
        Increasing window lengths.
    kind : {"sc-ttfs", "ttfs"}
    previous : (T, spiking ANN), optional
        A network fine-tuned at a window before ``windows[0]`` (to resume an interrupted sweep).
    calibration_images : int
        Training images for the kernels and the bias correction.
    dtype : torch.dtype
        Of the weights of the spiking ANN (float64: what the converted network computes).
    **kwargs
        For :func:`fine_tune` (``epochs`` is required; ``teacher`` is ``ann``).

    Yields
    ------
    (T, spiking, info)
        The fine-tuned spiking ANN at ``T`` and ``info``: ``bias_corrected`` (the conversion
        without fine-tuning at ``T``, a spiking ANN), ``start`` (``"bias-corrected"`` or
        ``"window <T'>"``), ``start_validation_agreement`` of both candidates, ``history``.
    """
    windows = [check_positive_int("each window", t) for t in windows]
    if any(b <= a for a, b in zip(windows, windows[1:])) or (previous and previous[0] >= windows[0]):
        raise ValueError(f"windows must increase (got {windows}, after {previous and previous[0]})")
    validation = kwargs.get("validation", 0.2)
    seed = kwargs.get("seed", 0)
    x_cal = calibration_set(dataset, calibration_images, validation, seed)
    if validation is not None:
        val_idx = validation_split(dataset, validation, seed)[1]
        x_val = dataset.x_train[val_idx].to(dtype)
        teacher_val = _outputs(copy.deepcopy(ann).to(dtype), x_val)
    for T in windows:
        candidates = {
            "bias-corrected": bias_corrected(ann, x_cal, T, kind, max_images=calibration_images, dtype=dtype)
        }
        if previous is not None:
            candidates[f"window {previous[0]}"] = with_window(previous[1], T)
        scores = {}
        if validation is not None:
            for name, net in candidates.items():
                a = agreement(_outputs(net, x_val), teacher_val)
                scores[name] = (a["agreement"], -a["mean_abs_output_diff"])
        # ties go to the network of the previous window (listed last)
        start = max(reversed(list(candidates)), key=lambda n: scores.get(n, (0.0,)))
        corrected = copy.deepcopy(candidates["bias-corrected"])
        spiking = candidates[start]
        history = fine_tune(spiking, dataset, teacher=ann, **kwargs)
        info = {
            "bias_corrected": corrected,
            "start": start,
            "start_validation_agreement": {n: s[0] for n, s in scores.items()},
            "history": history,
        }
        yield T, spiking, info
        previous = (T, spiking)
