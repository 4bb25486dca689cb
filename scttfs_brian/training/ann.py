"""Training the ANN, and how a converted network is measured against it.

**Agreement with the ANN** (:func:`agreement`) is the conversion metric: the share of inputs on
which the SNN predicts what the ANN predicts, and the mean ``|output - ANN output|`` over all
outputs. Accuracy on the labels stays beside it, but a conversion is judged by agreement: one
test image of the 450 digits is 0.22 points of accuracy, and an SNN can gain on some images what it
loses on others while computing another function. A conversion is called **lossless** when its
agreement is at least :data:`LOSSLESS_AGREEMENT` (99.5 %).

**Determinism.** Training runs under ``torch.use_deterministic_algorithms(True)`` with the
seeds set, and batches are shuffled from ``seed + epoch``: on the CPU, the same seed (and the
same number of torch threads) gives the same weights on the same machine (other CPUs may round
differently, which is why results are reported over several seeds). :func:`train_ann` accepts a
``checkpoint`` callback (called after every epoch with the full training state) and a
``resume_from`` state, so an interrupted run continues from its last finished epoch and ends
with the weights an uninterrupted run would have had.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset, batches
from .loop import (
    OPTIMIZERS,
    check_dataset,
    check_lr,
    check_positive_int,
    deterministic,
    model_dtype,
    progress_bar,
    rng_state,
)

__all__ = ["train_ann", "evaluate", "ann_outputs", "agreement", "LOSSLESS_AGREEMENT"]

#: "Lossless" conversion: at least this share of the inputs gets the ANN's prediction.
LOSSLESS_AGREEMENT = 0.995


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
    dtype = model_dtype(model)
    with deterministic(seed):
        if resume_from is not None:
            start = int(resume_from["epoch"])
            if start > epochs:
                raise ValueError(f"the checkpoint is at epoch {start}, after the {epochs} epochs asked for")
            model.load_state_dict(resume_from["model"])
            opt.load_state_dict(resume_from["optimizer"])
            sched.load_state_dict(resume_from["scheduler"])
            torch.set_rng_state(resume_from["rng"])
            history = {k: list(v) for k, v in resume_from["history"].items()}
        bar = progress_bar(epochs, progress, desc, initial=start)
        for epoch in range(start, epochs):
            model.train()
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
                        "rng": rng_state(),
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
    dataset = check_dataset(dataset)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be 'adam' or 'sgd' (got {optimizer!r})")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0 (got {weight_decay!r})")
    return _train_loop(
        model,
        [p for p in model.parameters() if p.requires_grad],
        dataset,
        epochs=check_positive_int("epochs", epochs),
        lr=check_lr(lr),
        optimizer=optimizer,
        batch_size=check_positive_int("batch_size", batch_size),
        seed=int(seed),
        weight_decay=float(weight_decay),
        momentum=float(momentum),
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
    dtype = model_dtype(model)
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size].to(dtype)).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


@torch.no_grad()
def ann_outputs(model: nn.Module, x: Any, *, batch_size: int = 512) -> torch.Tensor:
    """The outputs of ``model`` on ``x`` computed in float64 on a copy in eval mode (``model`` is
    not modified): the reference the converted network (float64) is compared with."""
    ref = copy.deepcopy(model).double().eval()
    x = torch.as_tensor(x).double()
    return torch.cat([ref(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def agreement(outputs: Any, reference: Any) -> dict:
    """How closely ``outputs`` (of an SNN) follow ``reference`` (the ANN's, same inputs).

    Parameters
    ----------
    outputs, reference : array-like, shape (N, n_out)
        Output potentials of the converted network and outputs of the ANN on the same ``N`` inputs.

    Returns
    -------
    dict
        ``agreement``: share of inputs whose argmax equals the ANN's; ``mean_abs_output_diff``:
        mean ``|output - reference|`` over inputs and outputs; ``agrees``: per input, whether the
        predictions are equal (bool array, for intervals over inputs).
    """
    out = np.asarray(torch.as_tensor(outputs).detach().double().cpu(), dtype=np.float64)
    ref = np.asarray(torch.as_tensor(reference).detach().double().cpu(), dtype=np.float64)
    out, ref = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
    if out.shape != ref.shape or len(out) == 0:
        raise ValueError(
            f"outputs {out.shape} and reference {ref.shape} must have the same non-empty shape "
            "(the SNN's and the ANN's outputs on the same inputs)"
        )
    agrees = out.argmax(1) == ref.argmax(1)
    return {
        "agreement": float(agrees.mean()),
        "mean_abs_output_diff": float(np.abs(out - ref).mean()),
        "agrees": agrees,
    }
