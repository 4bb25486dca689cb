"""The stages of an experiment, each writing its output into a :class:`~.rundir.Run`: train the
ANN, fine-tune the pre-conversion SNN (section 3.4: the paper's procedure on the labels,
:func:`fine_tune_stage`, or the study's distillation over neighbouring windows,
:func:`fine_tune_window_stage`), convert, simulate; plus the data set and the ANN they start from,
and a trained run directory opened again by later commands.

Heavy packages (torch, Brian2) are imported inside the functions: ``scttfs --help`` stays fast.
"""

from __future__ import annotations

import pickle
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .errors import UsageError
from .rundir import Run, atomic_write

__all__ = [
    "KINDS",
    "DATASETS",
    "MODELS",
    "torch_threads",
    "load_dataset",
    "build_ann",
    "train_stage",
    "fine_tune_stage",
    "fine_tune_window_stage",
    "network_stage",
    "load_network",
    "interrupts_raise",
    "TRAIN_SETTINGS",
    "WINDOW_SETTINGS",
    "codes_stage",
    "evaluate_network",
    "agreement_with",
    "simulate_stage",
    "open_trained_run",
    "network_label",
]

DATASETS = ("digits", "cifar10", "cifar100")
#: The settings of the ANN's training stage (``ann.pt``): the keys of the ``train`` section that
#: change the weights (``data_root`` does not).
TRAIN_SETTINGS = ("dataset", "model", "model_kwargs", "epochs", "lr", "optimizer", "batch_size",
                  "weight_decay", "seed")  # fmt: skip
MODELS = ("digits-cnn", "digits-mlp", "vgg16", "resnet20")
KINDS = ("sc-ttfs", "ttfs")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch threads, restoring the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_dataset(name: str, data_root: str | None):
    """The named dataset; a missing CIFAR archive is a :class:`UsageError` saying what is expected
    where (nothing is downloaded)."""
    from .. import data

    if name == "digits":
        return data.digits(normalize=True)
    root = Path(data_root if data_root is not None else "data")
    loader = data.cifar10 if name == "cifar10" else data.cifar100
    try:
        return loader(root, normalize=True)
    except FileNotFoundError as err:
        raise UsageError(f"{err} (pass the folder with --data-root)") from None
    except (ValueError, pickle.UnpicklingError, EOFError, tarfile.TarError, zlib.error) as err:
        raise UsageError(
            f"the {name} data in {root} cannot be read: {err}; replace it with the python version of the "
            "archive from https://www.cs.toronto.edu/~kriz/cifar.html"
        ) from None


def build_ann(model: str, num_classes: int, model_kwargs: dict, seed: int, in_channels: int, *,
              input_shape: tuple | None = None):  # fmt: skip
    """The untrained ANN ``model`` (weights drawn after ``torch.manual_seed(seed)``).

    With ``input_shape`` (the data set's ``(C, H, W)``), a model that cannot take these images
    (``digits-mlp`` on CIFAR, ``vgg16`` on 8x8 digits) is a :class:`UsageError` saying which
    models fit, found by one forward pass of a zero image."""
    import torch

    from ..models import build_model

    torch.manual_seed(seed)
    kwargs = dict(model_kwargs)
    if model in ("vgg16", "resnet20", "digits-cnn"):
        kwargs.setdefault("in_channels", in_channels)
    if model == "digits-mlp":
        kwargs.setdefault("in_features", 64)
    ann = build_model(model, num_classes, **kwargs)
    if input_shape is not None:
        try:
            with torch.no_grad():
                ann.eval()(torch.zeros(1, *input_shape))
        except (RuntimeError, ValueError) as err:
            raise UsageError(
                f"the model {model!r} cannot take images of shape {tuple(input_shape)} "
                f"({str(err).splitlines()[0][:160]}); pass a --model made for this data set "
                "(digits-cnn or digits-mlp for digits, vgg16 or resnet20 for CIFAR)"
            ) from None
        ann.train()
    return ann


def _resume_state(run: Run, ckpt: str, what: str) -> dict | None:
    """The training state saved in ``ckpt`` when resuming (logged), else ``None``."""
    state = run.load_torch(ckpt) if run.resume and run.path(ckpt).exists() else None
    if state is not None:
        run.log(f"  resuming {what} after epoch {int(state['epoch'])}")
    return state


def train_stage(run: Run, cfg: dict, ds, *, stage: str = "ann") -> Any:
    """Train the ANN (checkpoint every epoch, resume from the last) -> ``ann.pt``; return the model
    in eval mode. ``cfg`` holds the keys of the ``train`` configuration section; with ``holdout``
    (a fraction, optional) the ANN is trained without the validation split that fine-tuning
    selects on (:func:`~scttfs_brian.training.without_validation`, same ``seed``)."""
    from ..conversion import load_state_dict
    from ..training import evaluate, train_ann, without_validation

    holdout = cfg.get("holdout")
    train_ds = ds if holdout is None else without_validation(ds, holdout, cfg["seed"])

    model = build_ann(cfg["model"], ds.num_classes, cfg["model_kwargs"], cfg["seed"], ds.input_shape[0],
                      input_shape=ds.input_shape)  # fmt: skip
    ckpt = "checkpoints/ann_train.pt"

    def train() -> None:
        resume_from = _resume_state(run, ckpt, "ANN training")
        if holdout is not None:
            run.log(f"  training on {len(train_ds.y_train)} of {len(ds.y_train)} training images "
                    f"(the validation split, {holdout:g}, held out)")  # fmt: skip
        history = train_ann(
            model,
            train_ds,
            epochs=cfg["epochs"],
            lr=cfg["lr"],
            optimizer=cfg["optimizer"],
            batch_size=cfg["batch_size"],
            seed=cfg["seed"],
            weight_decay=cfg["weight_decay"],
            progress=run.progress,
            checkpoint=lambda state: run.save_torch(ckpt, state),
            resume_from=resume_from,
        )
        run.write_json("ann_history.json", history)
        run.save_torch("ann.pt", model.state_dict())

    settings = {k: cfg[k] for k in TRAIN_SETTINGS}
    if holdout is not None:
        settings["holdout"] = holdout
    run.stage(stage, ["ann_history.json", "ann.pt"], train, settings=settings)
    load_state_dict(model, run.path("ann.pt"))
    model.eval()
    acc = evaluate(model, ds.x_test, ds.y_test)
    run.log(f"  ANN test accuracy {100 * acc:.2f} % ({len(ds.x_test)} test images)")
    return model


def fine_tune_stage(run: Run, ann, codes: dict, ds, cfg: dict, label: str):
    """Fine-tune the pre-conversion SNN of ``codes`` (kernels + BN, section 3.4) with the paper's
    procedure (eq. 20 on all training images, the last epoch kept; ``scttfs convert``) ->
    ``twin-<label>.pt``; return it in eval mode. The demo fine-tunes as the study does instead
    (:func:`fine_tune_window_stage`)."""
    from ..training import fine_tune, spiking_ann

    twin = spiking_ann(ann, codes)
    ckpt = f"checkpoints/fine_tune-{label}.pt"

    def train() -> None:
        resume_from = _resume_state(run, ckpt, "fine-tuning")
        history = fine_tune(
            twin,
            ds,
            epochs=cfg["fine_tune_epochs"],
            lr=cfg["fine_tune_lr"],
            kernel_lr=cfg["fine_tune_kernel_lr"],
            batch_size=cfg["fine_tune_batch_size"],
            seed=cfg["seed"],
            objective="label",  # eq. 20 on all training images, the last epoch kept (the paper's)
            validation=None,
            progress=run.progress,
            checkpoint=lambda state: run.save_torch(ckpt, state),
            resume_from=resume_from,
        )
        run.write_json(f"fine_tune_history-{label}.json", history)
        run.save_torch(f"twin-{label}.pt", twin.state_dict())

    settings = {"codes": {n: c.to_dict() for n, c in codes.items()}, "seed": cfg["seed"],
                **{k: cfg[k] for k in ("fine_tune_epochs", "fine_tune_lr", "fine_tune_kernel_lr",
                                       "fine_tune_batch_size")}}  # fmt: skip
    outputs = [f"fine_tune_history-{label}.json", f"twin-{label}.pt"]
    run.stage(f"fine-tune {label}", outputs, train, settings=settings, upstream=["ann.pt"])
    twin.load_state_dict(run.load_torch(f"twin-{label}.pt"))
    return twin.eval()


#: The keys of a configuration that :func:`fine_tune_window_stage` reads.
WINDOW_SETTINGS = ("fine_tune_epochs", "fine_tune_lr", "fine_tune_kernel_lr", "fine_tune_weight_lr",
                   "layer_weight", "validation", "calibration_images", "seed")  # fmt: skip


def fine_tune_window_stage(run: Run, ann, ds, kind: str, T: int, cfg: dict, previous=None):
    """Fine-tune at window ``T`` as the study does (:func:`~scttfs_brian.training.fine_tune_windows`:
    distillation to the ANN, model selection on a validation split of the training images, started
    from the better of the bias-corrected conversion at ``T`` and ``previous``) ->
    ``twin-<kind>-T<T>.pt`` and ``fine_tune_history-<kind>-T<T>.json``; return the spiking ANN
    (float64, eval mode) read back from the file.

    Parameters
    ----------
    run : Run
    ann : nn.Module
        The trained ANN (the teacher).
    ds : Dataset
        Only its training split is read.
    kind : {"sc-ttfs", "ttfs"}
    T : int
    cfg : dict
        The keys of :data:`WINDOW_SETTINGS`.
    previous : (int, nn.Module), optional
        The window before ``T`` and the network this stage returned there (its file is upstream).
    """
    from ..training import fine_tune_windows, spiking_ann_from_state

    label = network_label(kind, T, False)
    ckpt = f"checkpoints/fine_tune-{label}.pt"
    twin_name = f"twin-{label}.pt"

    def train() -> None:
        resume_from = _resume_state(run, ckpt, f"fine-tuning {label}")
        ((_, spiking, info),) = fine_tune_windows(
            ann,
            ds,
            [T],
            kind,
            previous=previous,
            calibration_images=cfg["calibration_images"],
            epochs=cfg["fine_tune_epochs"],
            lr=cfg["fine_tune_lr"],
            kernel_lr=cfg["fine_tune_kernel_lr"],
            weight_lr=cfg["fine_tune_weight_lr"],
            layer_weight=cfg["layer_weight"],
            validation=cfg["validation"],
            seed=cfg["seed"],
            progress=run.progress,
            checkpoint=lambda state: run.save_torch(ckpt, state),
            resume_from=resume_from,
        )
        history = {"start": info["start"], "start_validation_agreement": info["start_validation_agreement"],
                   **info["history"]}  # fmt: skip
        run.write_json(f"fine_tune_history-{label}.json", history)
        run.save_torch(twin_name, spiking.state_dict())

    settings = {"objective": "distill", "start_from": None if previous is None else int(previous[0]),
                **{k: cfg[k] for k in WINDOW_SETTINGS}}  # fmt: skip
    upstream = ["ann.pt"] + ([f"twin-{network_label(kind, previous[0], False)}.pt"] if previous else [])
    outputs = [f"fine_tune_history-{label}.json", twin_name]
    run.stage(f"fine-tune {label}", outputs, train, settings=settings, upstream=upstream)
    return spiking_ann_from_state(ann, kind, T, run.load_torch(twin_name))


def network_stage(run: Run, label: str, make: Callable[[], Any], *, settings: Any = None,
                  upstream: Sequence[str] = ()):  # fmt: skip
    """Convert (``make()`` returns a SpikingNetwork) -> ``snn-<label>.npz``; return the network.
    ``settings`` and ``upstream`` (the artifacts ``make`` reads) are its provenance."""

    name = f"snn-{label}.npz"

    def convert() -> None:
        snn = make()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                snn.graph.save(f)

        atomic_write(run.path(name), write)

    run.stage(f"convert {label}", [name], convert, settings=settings, upstream=upstream)
    return load_network(run, name)


def load_network(run: Run, name: str):
    """The SpikingNetwork saved as ``name`` in the run directory; a damaged file is a
    :class:`UsageError` naming it."""
    from ..network import SpikingNetwork

    try:
        return SpikingNetwork.load(run.path(name))
    except ValueError as err:
        raise UsageError(f"{err}; delete it and convert again") from None


def fine_tuned_network(twin, input_shape):
    """The SpikingNetwork of a fine-tuned pre-conversion SNN (BN folded, eq. 24)."""
    from ..conversion import convert
    from ..training import export

    ann, codes = export(twin)
    return convert(ann, input_shape, code=codes)


def codes_stage(run: Run, ann, ds, T: int, kind: str, calibration_images: int, label: str) -> dict:
    """Kernels from the activations of ``calibration_images`` training images -> ``codes-<label>.json``
    (one :meth:`~scttfs_brian.coding.CodeBase.to_dict` per layer); return the codes."""
    from ..coding import code_from_dict
    from ..training import init_codes

    name = f"codes-{label}.json"

    def fit() -> None:
        codes = init_codes(ann, ds.x_train, T, kind, max_images=calibration_images)
        run.write_json(name, {layer: code.to_dict() for layer, code in codes.items()})

    settings = {"T": T, "kind": kind, "calibration_images": calibration_images}
    run.stage(f"kernels {label}", [name], fit, settings=settings, upstream=["ann.pt"])
    path = run.path(name)
    return {layer: code_from_dict(d, f"{path} (layer {layer!r})") for layer, d in run.read_json(name).items()}


def evaluate_network(snn, x, y, reference=None) -> dict:
    """Accuracy, spikes per image and latency of a converted network on the torch engine (float64);
    with ``reference`` (the ANN's outputs on ``x``, :func:`~scttfs_brian.training.ann_outputs`)
    also its ``agreement`` with the ANN and the ``mean_abs_output_diff``
    (:func:`~scttfs_brian.training.agreement`)."""
    import numpy as np

    res = snn.simulate(x, backend="torch")
    out = {
        "accuracy": res.accuracy(y.numpy()),
        "spikes_per_image": float(np.mean(res.spikes_per_input)),
        "latency_steps": int(res.latency_steps),
        "engine": "torch twin (float64)",
    }
    if reference is not None:
        out.update(agreement_with(res.outputs, reference))
    return out


def agreement_with(outputs, reference) -> dict:
    """``{"agreement", "mean_abs_output_diff"}`` of an SNN's ``outputs`` against the ANN's
    ``reference`` (:func:`~scttfs_brian.training.agreement`, without the per-input mask)."""
    from ..training import agreement

    a = agreement(outputs, reference)
    return {"agreement": a["agreement"], "mean_abs_output_diff": a["mean_abs_output_diff"]}


def simulate_stage(run: Run, snn, x, *, label: str, backend: str, copies, target: str, distributed=None):
    """Simulate ``x`` with ``backend`` (recording every layer) -> ``sim-<backend>-<label>-<N>img.npz``
    (:meth:`~scttfs_brian.results.SimulationResult.save`); return the result read back.
    ``distributed``: a Dask client to shard a Brian2 run over (the same spikes as one process)."""
    from ..results import SimulationResult

    name = f"sim-{backend}-{label}-{len(x)}img.npz"

    def simulate() -> None:
        kwargs = {"record": True}
        if backend == "brian2":
            kwargs.update(copies=copies, target=target, progress=run.progress)
            if distributed is not None:
                kwargs["distributed"] = distributed
        t0 = time.perf_counter()
        with interrupts_raise() if backend == "brian2" else nullcontext():
            res = snn.simulate(x, backend=backend, **kwargs)
        res.timings["total"] = time.perf_counter() - t0
        res.save(run.path(name))

    # copies and target change the timings only, never the spikes
    settings = {"backend": backend, "images": len(x)}
    run.stage(
        f"simulate {label} ({backend})", [name], simulate, settings=settings, upstream=[f"snn-{label}.npz"]
    )
    return SimulationResult.load(run.path(name))


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Ctrl-C during a Brian2 run raises :class:`KeyboardInterrupt` (the run can be resumed)
    instead of Brian2's default, which stops the run early and returns partial results as if it
    had finished; a run that Brian2 stopped anyway raises too."""
    import sys

    b2 = sys.modules.get("brian2")
    if b2 is None:
        import brian2 as b2
    pref = b2.prefs.core.stop_on_keyboard_interrupt
    b2.prefs.core.stop_on_keyboard_interrupt = False
    try:
        yield
        if getattr(b2.Network, "_globally_stopped", False):
            raise KeyboardInterrupt("the Brian2 run was stopped before it finished")
    finally:
        b2.prefs.core.stop_on_keyboard_interrupt = pref


def network_label(kind: str, T: int, fine_tuned: bool) -> str:
    """The name of a converted network in a run directory: ``<kind>-T<T>[-ft]``."""
    return f"{kind}-T{T}" + ("-ft" if fine_tuned else "")


def open_trained_run(
    run_dir: Path, *, command: str, data_root: str | None, resume: bool, progress: bool,
    command_line: str | None = None,
):  # fmt: skip
    """The run directory of a finished ``scttfs train``: ``(run, dataset, ann, train config)``.
    The run (and its lock) is opened before anything is read from it."""
    from ..conversion import load_state_dict

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file() or not (run_dir / "ann.pt").is_file():
        raise UsageError(
            f"{run_dir} holds no trained ANN (expected config.json and ann.pt written by `scttfs train`); "
            "run `scttfs train --run-dir DIR` first, or pass the --run-dir of a finished training"
        )
    run = Run(run_dir, resume=resume, progress=progress, command=command, command_line=command_line)
    try:
        stored = run.read_json("config.json")
        tcfg = stored.get("train") if isinstance(stored, dict) else None
        missing = None if not isinstance(tcfg, dict) else [k for k in TRAIN_SETTINGS if k not in tcfg]
        if tcfg is None or missing:
            what = "no 'train' section" if tcfg is None else f"a 'train' section without {missing}"
            raise UsageError(
                f"{run.path('config.json')} has {what}: it was not written by `scttfs train`; "
                "run `scttfs train --run-dir DIR` first, or pass the --run-dir of a finished training"
            )
        ds = load_dataset(tcfg["dataset"], data_root or tcfg.get("data_root"))
        model = build_ann(tcfg["model"], ds.num_classes, tcfg["model_kwargs"], tcfg["seed"], ds.input_shape[0],
                          input_shape=ds.input_shape)  # fmt: skip
        try:
            load_state_dict(model, run.path("ann.pt")).eval()
        except ValueError as err:
            raise UsageError(
                f"{str(err).splitlines()[0]}; train again with `scttfs train --run-dir {run_dir}`"
            ) from None
    except BaseException:
        run.close()
        raise
    return run, ds, model, tcfg
