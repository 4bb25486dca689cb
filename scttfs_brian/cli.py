"""The ``scttfs`` command: ``demo``, ``train``, ``convert`` and ``simulate``.

Every command writes into a **run directory** (``--run-dir``, default ``runs/<name>``):

* ``config.json``: the resolved configuration of each command run there (one section per command);
* ``checkpoints/``: training states, written after every epoch (``torch.save``; read back with
  ``torch.load(..., weights_only=True)``);
* the outputs of each stage (``ann.pt`` state_dicts, ``snn-*.npz`` networks, ``*.json`` results),
  each written atomically (a temporary file, then ``os.replace``), so a file that exists is complete;
* ``metrics.json``, ``report.md`` and ``figures/``; ``log.txt`` lists what each stage did.

``--resume`` continues an interrupted run: a stage whose output exists is skipped (``log.txt`` says
"skipped"), training resumes from its last finished epoch, and the configuration must match the
one stored. Without ``--resume`` every stage runs again and overwrites its outputs.

Exit codes: 0 success, 1 a failed check (Brian2 and the torch twin disagree), 2 a usage error
(bad arguments, missing data or run files), 130 interrupted (resume with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "UsageError", "CheckFailed"]

#: Called after every finished stage with ``(run, stage_name)``; tests replace it to simulate an
#: interruption.
STAGE_HOOK: Callable[[Any, str], None] | None = None

DATASETS = ("digits", "cifar10", "cifar100")
MODELS = ("digits-cnn", "digits-mlp", "vgg16", "resnet20")
KINDS = ("sc-ttfs", "ttfs")
PLATFORMS = {"truenorth": (0.4, 0.6), "spinnaker": (0.64, 0.36)}

#: The demo's defaults. T = 4 is the smallest window at which the fine-tuned SC-TTFS digits CNN
#: matched the ANN in our sweep (see the README); the sweep values are drawn in a figure.
DEMO = {
    "dataset": "digits",
    "model": "digits-cnn",
    "model_kwargs": {},
    "epochs": 20,
    "lr": 1e-2,
    "optimizer": "adam",
    "batch_size": 64,
    "weight_decay": 0.0,
    "T": 3,
    "sweep": [1, 2, 3, 4, 6, 8, 12, 16],
    # fine-tuning costs ~5 s per T-step of window per code; TTFS is swept further (it needs longer)
    "fine_tune_sweep": {"sc-ttfs": [2, 3, 4], "ttfs": [2, 3, 4, 6, 8]},
    "calibration_images": 512,
    "fine_tune_epochs": 12,
    "fine_tune_lr": 1e-2,
    "fine_tune_kernel_lr": 1e-3,
    "fine_tune_batch_size": 128,
    "images": None,
    "copies": 8,
    "target": "numpy",
    "seed": 0,
}
#: "Lossless": SNN accuracy at least ANN accuracy minus this many points.
LOSSLESS_POINTS = 0.3

#: ``--quick``: a small CNN, few epochs and images (a smoke test of the whole pipeline).
QUICK = {
    "model_kwargs": {"channels": [8, 16], "hidden": 32, "pool_after": [1]},
    "epochs": 3,
    "sweep": [2, 4],
    "fine_tune_sweep": {"sc-ttfs": [], "ttfs": []},
    "calibration_images": 128,
    "fine_tune_epochs": 1,
    "images": 24,
    "copies": 12,
}


class UsageError(Exception):
    """A problem the user can fix (missing data, missing run files, mismatched configuration):
    printed without a traceback, exit code 2."""


class CheckFailed(Exception):
    """A verification failed (e.g. Brian2 and the torch twin disagree): exit code 1."""


# --------------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------------
def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` and ``os.replace``: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


class Run:
    """A run directory: atomic writers, the stage log and ``--resume`` skipping."""

    def __init__(self, directory: Path, *, resume: bool, progress: bool, command: str):
        self.dir = Path(directory)
        self.resume = resume
        self.progress = progress
        self.command = command
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def log(self, message: str) -> None:
        print(message, flush=True)
        with open(self.dir / "log.txt", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.command}: {message}\n")

    # -- files --------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n", encoding="utf-8")

        return _atomic(self.path(name), write)

    def read_json(self, name: str) -> Any:
        return json.loads(self.path(name).read_text(encoding="utf-8"))

    def write_text(self, name: str, text: str) -> Path:
        return _atomic(self.path(name), lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def save_torch(self, name: str, obj: Any) -> Path:
        import torch

        return _atomic(self.path(name), lambda tmp: torch.save(obj, tmp))

    def load_torch(self, name: str) -> Any:
        import torch

        return torch.load(self.path(name), map_location="cpu", weights_only=True)

    def save_figure(self, name: str, fig) -> Path:
        def write(tmp: Path) -> None:
            fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")

        return _atomic(self.path(f"figures/{name}.png"), write)

    def update_json(self, name: str, update: dict) -> None:
        current = self.read_json(name) if self.path(name).exists() else {}
        current.update(update)
        self.write_json(name, current)

    # -- configuration -------------------------------------------------------------------------
    def store_config(self, config: dict, section: str | None = None) -> None:
        """Record this command's resolved configuration (under ``section``, default the command);
        on ``--resume`` it must equal the one stored by the interrupted run (otherwise its outputs
        would be mixed with new ones)."""
        section = section or self.command
        stored = self.read_json("config.json") if self.path("config.json").exists() else {}
        old = stored.get(section)
        if self.resume and old is not None:
            new = json.loads(json.dumps(config, default=_json_default))
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
                raise UsageError(
                    f"--resume with a different configuration than the run in {self.dir} ({detail}); "
                    "repeat the original options, or run without --resume to start over"
                )
        stored[section] = config
        self.write_json("config.json", stored)

    # -- stages --------------------------------------------------------------------------------
    def stage(self, name: str, outputs: Sequence[str], fn: Callable[[], None]) -> bool:
        """Run stage ``name`` unless ``--resume`` and all its ``outputs`` exist. ``fn`` must write
        the outputs atomically (the last one last). Returns True when the stage ran."""
        if self.resume and all(self.path(o).exists() for o in outputs):
            self.log(f"stage {name}: skipped (output exists: {', '.join(outputs)})")
            ran = False
        else:
            self.log(f"stage {name}: running")
            t0 = time.perf_counter()
            fn()
            missing = [o for o in outputs if not self.path(o).exists()]
            if missing:  # pragma: no cover - a programming error
                raise RuntimeError(f"stage {name} did not write {missing}")
            self.log(f"stage {name}: done in {time.perf_counter() - t0:.1f} s")
            ran = True
        if STAGE_HOOK is not None:
            STAGE_HOOK(self, name)
        return ran


# --------------------------------------------------------------------------------------------
# Pieces shared by the commands
# --------------------------------------------------------------------------------------------
def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def load_dataset(name: str, data_root: str | None):
    """The named dataset; a missing CIFAR archive is a :class:`UsageError` saying what is expected
    where (nothing is downloaded)."""
    from . import data

    if name == "digits":
        return data.digits(normalize=True)
    root = Path(data_root if data_root is not None else "data")
    loader = data.cifar10 if name == "cifar10" else data.cifar100
    try:
        return loader(root, normalize=True)
    except FileNotFoundError as err:
        raise UsageError(f"{err} (pass the folder with --data-root)") from None


def build_ann(model: str, num_classes: int, model_kwargs: dict, seed: int, in_channels: int):
    import torch

    from .models import build_model

    torch.manual_seed(seed)
    kwargs = dict(model_kwargs)
    if model in ("vgg16", "resnet20", "digits-cnn"):
        kwargs.setdefault("in_channels", in_channels)
    if model == "digits-mlp":
        kwargs.setdefault("in_features", 64)
    return build_model(model, num_classes, **kwargs)


def _codes_to_json(codes: dict) -> dict:
    from .coding import SCTTFSCode

    out = {}
    for name, code in codes.items():
        kern = lambda k: [k.alpha, k.beta, k.k]  # noqa: E731
        entry = {
            "kind": "sc-ttfs" if isinstance(code, SCTTFSCode) else "ttfs",
            "T": code.T,
            "encode": kern(code.encode),
        }
        if isinstance(code, SCTTFSCode):
            entry["calibrate"] = kern(code.calibrate)
        out[name] = entry
    return out


def _codes_from_json(obj: dict) -> dict:
    from .coding import SCTTFSCode, ThresholdKernel, TTFSCode

    out = {}
    for name, d in obj.items():
        enc = ThresholdKernel(*d["encode"])
        out[name] = (
            SCTTFSCode(d["T"], enc, ThresholdKernel(*d["calibrate"]))
            if d["kind"] == "sc-ttfs"
            else TTFSCode(d["T"], enc)
        )
    return out


def _resume_state(run: Run, ckpt: str, what: str) -> dict | None:
    """The training state saved in ``ckpt`` when resuming (logged), else ``None``."""
    state = run.load_torch(ckpt) if run.resume and run.path(ckpt).exists() else None
    if state is not None:
        run.log(f"  resuming {what} after epoch {int(state['epoch'])}")
    return state


def _train_stage(run: Run, cfg: dict, ds, *, stage: str = "ann") -> Any:
    """Train the ANN (checkpoint every epoch, resume from the last) -> ``ann.pt``; return the model."""
    from .conversion import load_state_dict
    from .training import evaluate, train_ann

    model = build_ann(cfg["model"], ds.num_classes, cfg["model_kwargs"], cfg["seed"], ds.input_shape[0])
    ckpt = "checkpoints/ann_train.pt"

    def train() -> None:
        resume_from = _resume_state(run, ckpt, "ANN training")
        history = train_ann(
            model,
            ds,
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

    run.stage(stage, ["ann_history.json", "ann.pt"], train)
    load_state_dict(model, run.path("ann.pt"))
    model.eval()
    acc = evaluate(model, ds.x_test, ds.y_test)
    run.log(f"  ANN test accuracy {100 * acc:.2f} % ({len(ds.x_test)} test images)")
    return model


def _fine_tune_stage(run: Run, ann, codes: dict, ds, cfg: dict, label: str):
    """Fine-tune the pre-conversion SNN of ``codes`` -> ``twin-<label>.pt``; return the twin."""
    from .training import fine_tune, spiking_twin

    twin = spiking_twin(ann, codes)
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
            progress=run.progress,
            checkpoint=lambda state: run.save_torch(ckpt, state),
            resume_from=resume_from,
        )
        run.write_json(f"fine_tune_history-{label}.json", history)
        run.save_torch(f"twin-{label}.pt", twin.state_dict())

    run.stage(f"fine-tune {label}", [f"fine_tune_history-{label}.json", f"twin-{label}.pt"], train)
    twin.load_state_dict(run.load_torch(f"twin-{label}.pt"))
    return twin.eval()


def _network_stage(run: Run, label: str, make: Callable[[], Any]):
    """Convert (``make()`` returns a SpikingNetwork) -> ``snn-<label>.npz``; return the network."""
    from .network import SpikingNetwork

    name = f"snn-{label}.npz"

    def convert() -> None:
        snn = make()
        _atomic(run.path(name), lambda tmp: _save_graph(snn.graph, tmp))

    run.stage(f"convert {label}", [name], convert)
    return SpikingNetwork.load(run.path(name))


def _save_graph(graph, tmp: Path) -> None:
    with open(tmp, "wb") as f:
        graph.save(f)


def _twin_eval(snn, x, y) -> dict:
    """Accuracy, spikes per image and latency of a converted network on the torch twin (float64)."""
    import numpy as np

    res = snn.simulate(x, backend="torch")
    return {
        "accuracy": res.accuracy(y.numpy()),
        "spikes_per_image": float(np.mean(res.spikes_per_input)),
        "latency_steps": int(res.latency_steps),
        "engine": "torch twin (float64)",
    }


def _energy(rows: dict) -> dict:
    """Eq. 25 for every row ``{label: (spikes, latency)}``: raw and max-normalized estimates."""
    out: dict = {"normalization": None, "raw": {}, "normalized": {}}
    try:
        from .analysis import energy_table

        table = energy_table([(k, s, lat) for k, (s, lat) in rows.items()], normalization="max")
        for p in table.energies:
            out["normalized"][p] = {k: table.energy_of(k, p) for k in rows}
        out["normalization"] = (
            "max: N and L each divided by their maximum over the SNN rows before weighting "
            "(scttfs_brian.analysis.energy_table)"
        )
    except (ImportError, AttributeError):  # analysis.py is optional here
        out["normalization"] = "unnormalized (scttfs_brian.analysis.energy_table not available)"
    for p, (e_i, e_l) in PLATFORMS.items():
        out["raw"][p] = {k: s * e_i + lat * e_l for k, (s, lat) in rows.items()}
    return out


def _compare(brian, torch_res) -> dict:
    """Spike-for-spike comparison of two SimulationResults recorded with ``record=True``."""
    import numpy as np

    layers = {}
    for name, (te, tc) in torch_res.spike_times.items():
        be, bc = brian.spike_times[name]
        layers[name] = {
            "t_enc_mismatches": int(np.count_nonzero(be != te)),
            "t_cal_mismatches": int(np.count_nonzero(bc != tc)),
            "neurons": int(te.size),
        }
    same_spikes = all(v["t_enc_mismatches"] == 0 and v["t_cal_mismatches"] == 0 for v in layers.values())
    same_pred = bool(np.array_equal(brian.predictions, torch_res.predictions))
    return {
        "identical": bool(same_spikes and same_pred and set(brian.spike_times) == set(torch_res.spike_times)),
        "spikes_identical": bool(same_spikes),
        "predictions_identical": same_pred,
        "max_output_difference": float(np.max(np.abs(brian.outputs - torch_res.outputs))),
        "layers": layers,
    }


def _save_result(run: Run, name: str, res) -> None:
    import numpy as np

    arrays = {
        "outputs": res.outputs,
        "predictions": res.predictions,
        "latency_steps": np.array(res.latency_steps),
    }
    for k, v in res.spike_counts.items():
        arrays[f"counts/{k}"] = v
    for k, (te, tc) in res.spike_times.items():
        arrays[f"t_enc/{k}"] = te
        arrays[f"t_cal/{k}"] = tc
    arrays["timings"] = np.array(json.dumps(res.timings))
    arrays["backend"] = np.array(res.backend)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    _atomic(run.path(name), write)


def _load_result(path: Path):
    import numpy as np

    from .results import SimulationResult

    with np.load(path, allow_pickle=False) as f:
        counts = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("counts/")}
        times = {
            k.split("/", 1)[1]: (f[k], f["t_cal/" + k.split("/", 1)[1]])
            for k in f.files
            if k.startswith("t_enc/")
        }
        return SimulationResult(
            outputs=f["outputs"],
            predictions=f["predictions"],
            spike_counts=counts,
            latency_steps=int(f["latency_steps"]),
            spike_times=times,
            backend=str(f["backend"]),
            timings=json.loads(str(f["timings"])),
        )


def _simulate_stage(run: Run, snn, x, *, label: str, backend: str, copies, target: str) -> Any:
    """Simulate ``x`` with ``backend`` (recording every layer) -> ``sim-<backend>-<label>.npz``."""
    name = f"sim-{backend}-{label}-{len(x)}img.npz"

    def simulate() -> None:
        kwargs = {"record": True}
        if backend == "brian2":
            kwargs.update(copies=copies, target=target, progress=run.progress)
        t0 = time.perf_counter()
        res = snn.simulate(x, backend=backend, **kwargs)
        res.timings["total"] = time.perf_counter() - t0
        _save_result(run, name, res)

    run.stage(f"simulate {label} ({backend})", [name], simulate)
    return _load_result(run.path(name))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_accuracy_vs_T(run: Run, sweep: dict, tuned: dict, ann_accuracy: float) -> Path:
    """Accuracy vs window for both codes, with kernels from activations and fine-tuned; the right
    panel zooms on the top, with the band of "lossless" (ANN - 0.3 points)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ann = 100 * ann_accuracy
    for ax in axes:
        for kind, color in (("sc-ttfs", "C0"), ("ttfs", "C1")):
            for data, style, what in (
                (sweep, "-o", "kernels from activations"),
                (tuned, "--*", "fine-tuned"),
            ):
                Ts = sorted(int(t) for t in data[kind])
                acc = [100 * data[kind][str(t)]["accuracy"] for t in Ts]
                ax.plot(Ts, acc, style, color=color, markersize=7, label=f"{kind.upper()}, {what}")
        ax.axhline(ann, color="0.3", linestyle=":", linewidth=1.2, label="ANN")
        ax.set_xticks(sorted({int(t) for d in (sweep, tuned) for k in KINDS for t in d[k]}))
        ax.set_xlabel("window T (time steps)")
    axes[1].axhspan(
        ann - LOSSLESS_POINTS, ann, color="0.85", zorder=0, label=f"lossless (ANN - {LOSSLESS_POINTS})"
    )
    axes[1].set_ylim(ann - 3.0, min(100.0, ann + 1.0))
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("Digits CNN converted to SNNs (torch twin, float64)", fontsize=10)
    axes[1].set_title("zoom", fontsize=10)
    axes[1].legend(fontsize=7, loc="lower right")
    path = run.save_figure("accuracy_vs_T", fig)
    plt.close(fig)
    return path


def figure_raster(run: Run, snn, res, image: int, title: str, figure: str = "raster") -> Path:
    """Spikes of every layer for one image: encoding ``|``, calibration ``x``; time = the layer's
    window x T + the step inside it."""
    import numpy as np

    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    try:
        from .brian.plotting import CALIBRATION_STYLE, ENCODING_STYLE
    except ImportError:  # plotting.py is optional here
        ENCODING_STYLE = {"marker": "|", "color": "k", "linestyle": "none"}
        CALIBRATION_STYLE = {"marker": "x", "color": "C3", "linestyle": "none"}
    g = snn.graph
    T = g.T
    fig, ax = plt.subplots(figsize=(7, 5))
    offset, ticks = 0, []
    for name in g.codes():
        te, tc = (a[image].reshape(-1) for a in res.spike_times[name])
        w = g.windows[name]
        for times, style, lab in (
            (te, ENCODING_STYLE, "encoding spike"),
            (tc, CALIBRATION_STYLE, "calibration spike"),
        ):
            idx = np.flatnonzero(times >= 0)
            kw = {**style, "markersize": 3 if style is ENCODING_STYLE else 2.5}
            ax.plot(w * T + times[idx], offset + idx, label=lab if offset == 0 else None, **kw)
        ticks.append((offset + te.size / 2, name))
        offset += te.size
        ax.axhline(offset, color="0.85", linewidth=0.6)
    for b in range(g.n_windows + 1):
        ax.axvline(b * T - 0.5, color="0.8", linewidth=0.6, zorder=0)
    ax.set_yticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    path = run.save_figure(figure, fig)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------
def _resolve_demo(args: argparse.Namespace) -> dict:
    cfg = dict(DEMO)
    if args.quick:
        cfg.update(QUICK)
    keys = (
        "epochs",
        "T",
        "fine_tune_epochs",
        "fine_tune_lr",
        "fine_tune_kernel_lr",
        "images",
        "copies",
        "target",
    )
    for key in (*keys, "seed"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    if args.sweep is not None:
        cfg["sweep"] = args.sweep
    cfg["sweep"] = sorted(set(cfg["sweep"]) | {cfg["T"]})
    given = args.fine_tune_sweep
    cfg["fine_tune_sweep"] = {
        kind: sorted(set(cfg["fine_tune_sweep"][kind] if given is None else given) | {cfg["T"]})
        for kind in KINDS
    }
    cfg["quick"] = bool(args.quick)
    return cfg


def _demo_train_config(cfg: dict) -> dict:
    """The ``train`` section of a demo run: ``scttfs convert/simulate --run-dir`` work on it too."""
    keys = (
        "dataset",
        "model",
        "model_kwargs",
        "epochs",
        "lr",
        "optimizer",
        "batch_size",
        "weight_decay",
        "seed",
    )
    return {"data_root": None, **{k: cfg[k] for k in keys}}


def _smallest_lossless(results: dict, ann_acc: float) -> int | None:
    ok = [int(t) for t, r in results.items() if r["accuracy"] >= ann_acc - LOSSLESS_POINTS / 100]
    return min(ok) if ok else None


def cmd_demo(args: argparse.Namespace) -> int:
    """Train the digits CNN, convert it with SC-TTFS and TTFS (kernels from activation statistics),
    fine-tune kernels + BN, simulate the test split in Brian2, check it spike for spike against the
    torch twin, and report accuracy, latency, spikes and energy."""
    t_start = time.perf_counter()
    cfg = _resolve_demo(args)
    run = Run(
        args.run_dir or Path("runs") / (args.name or "demo"),
        resume=args.resume,
        progress=not args.no_progress,
        command="demo",
    )
    run.store_config(_demo_train_config(cfg), section="train")
    run.store_config(cfg)
    _set_threads(args.threads)
    import numpy as np

    from .conversion import ann_activations, code_from_activations, convert
    from .network import SpikingNetwork
    from .training import evaluate, export

    ds = load_dataset("digits", None)
    x_test, y_test = ds.x_test, ds.y_test
    if cfg["images"] is not None:
        x_test, y_test = x_test[: cfg["images"]], y_test[: cfg["images"]]
    T = cfg["T"]
    timings: dict[str, float] = {}

    # 0. the ANN
    t0 = time.perf_counter()
    ann = _train_stage(run, cfg, ds)
    ann_acc = evaluate(ann, x_test, y_test)
    timings["ann"] = time.perf_counter() - t0

    # 1. kernels from activation statistics for every window of the sweep, both codes
    t0 = time.perf_counter()

    def sweep() -> None:
        acts = ann_activations(
            ann, ds.x_train[: cfg["calibration_images"]]
        )  # the kernels are fitted to these
        base = convert(
            ann, ds.input_shape, code={n: code_from_activations(a, 1, "ttfs") for n, a in acts.items()}
        )
        out: dict = {k: {} for k in KINDS}
        codes: dict = {k: {} for k in KINDS}
        for kind in KINDS:
            for t in cfg["sweep"]:
                c = {name: code_from_activations(a, t, kind) for name, a in acts.items()}
                out[kind][str(t)] = _twin_eval(SpikingNetwork(base.graph.with_codes(c)), x_test, y_test)
                codes[kind][str(t)] = _codes_to_json(c)
                run.log(
                    f"  {kind:>7} T={t}: {100 * out[kind][str(t)]['accuracy']:6.2f} % (kernels from activations)"
                )
        run.write_json("codes.json", codes)
        run.write_json("sweep.json", out)

    run.stage("sweep", ["codes.json", "sweep.json"], sweep)
    sweep_res = run.read_json("sweep.json")
    init = {k: {t: _codes_from_json(c) for t, c in v.items()} for k, v in run.read_json("codes.json").items()}
    timings["sweep"] = time.perf_counter() - t0

    # 2. fine-tuning (section 3.4) at the windows of the fine-tuning sweep, 3. BN folded (eq. 24)
    t0 = time.perf_counter()
    nets = {}
    for kind in KINDS:
        nets[(kind, T)] = _network_stage(
            run, f"{kind}-T{T}", lambda kind=kind: convert(ann, ds.input_shape, code=init[kind][str(T)])
        )
        for t in cfg["fine_tune_sweep"][kind]:
            twin = _fine_tune_stage(run, ann, init[kind][str(t)], ds, cfg, f"{kind}-T{t}")

            def exported(twin=twin):
                ann2, codes2 = export(twin)
                return convert(ann2, ds.input_shape, code=codes2)

            nets[(kind, t, "ft")] = _network_stage(run, f"{kind}-T{t}-ft", exported)
    timings["fine_tune"] = time.perf_counter() - t0

    t0 = time.perf_counter()

    def evaluate_tuned() -> None:
        out = {
            k: {str(t): _twin_eval(nets[(k, t, "ft")], x_test, y_test) for t in cfg["fine_tune_sweep"][k]}
            for k in KINDS
        }
        run.write_json("fine_tuned.json", out)

    run.stage("evaluate fine-tuned (torch twin)", ["fine_tuned.json"], evaluate_tuned)
    tuned = run.read_json("fine_tuned.json")
    for kind in KINDS:
        for t in cfg["fine_tune_sweep"][kind]:
            run.log(f"  {kind:>7} T={t}: {100 * tuned[kind][str(t)]['accuracy']:6.2f} % (fine-tuned)")
    timings["evaluate"] = time.perf_counter() - t0

    # 4. Brian2, and the spike-for-spike check against the torch twin
    t0 = time.perf_counter()
    snn = nets[("sc-ttfs", T, "ft")]
    brian = _simulate_stage(
        run,
        snn,
        x_test,
        label=f"sc-ttfs-T{T}-ft",
        backend="brian2",
        copies=cfg["copies"],
        target=cfg["target"],
    )
    timings["brian2"] = time.perf_counter() - t0
    reference = snn.simulate(x_test, backend="torch", record=True)
    check = _compare(brian, reference)
    brian_acc = brian.accuracy(y_test.numpy())
    verdict = (
        f"VERIFIED: Brian2 and the torch twin (float64) agree spike for spike on {len(x_test)} images: "
        f"all t_enc/t_cal of the {len(check['layers'])} spiking layers identical, predictions identical "
        f"(max |output difference| {check['max_output_difference']:.1e})"
        if check["identical"]
        else "MISMATCH between Brian2 and the torch twin: "
        + "; ".join(
            f"{k}: {v['t_enc_mismatches']} t_enc, {v['t_cal_mismatches']} t_cal"
            for k, v in check["layers"].items()
        )
        + f"; predictions identical: {check['predictions_identical']}"
    )
    run.log(verdict)

    # 5. the report
    def row(label, name, engine, r):
        return {
            "label": label,
            "network": name,
            "engine": engine,
            "accuracy": r["accuracy"],
            "latency_steps": r["latency_steps"],
            "spikes_per_image": r["spikes_per_image"],
        }

    brian_row = {
        "accuracy": brian_acc,
        "latency_steps": int(brian.latency_steps),
        "spikes_per_image": float(np.mean(brian.spikes_per_input)),
    }
    rows = [
        {
            "label": "ann",
            "network": "ANN",
            "engine": "torch",
            "accuracy": ann_acc,
            "latency_steps": None,
            "spikes_per_image": None,
        },
        row(
            "sc-ttfs", f"SC-TTFS T={T}, kernels from activations", "torch twin", sweep_res["sc-ttfs"][str(T)]
        ),
        row("sc-ttfs+ft", f"SC-TTFS T={T}, fine-tuned", "Brian2 (= torch twin)", brian_row),
        row("ttfs", f"TTFS T={T}, kernels from activations", "torch twin", sweep_res["ttfs"][str(T)]),
        row("ttfs+ft", f"TTFS T={T}, fine-tuned", "torch twin", tuned["ttfs"][str(T)]),
    ]
    # TTFS at the window it needs: the smallest lossless one, else the largest tried (energy at par)
    t_ttfs = _smallest_lossless(tuned["ttfs"], ann_acc)
    why = "smallest lossless T"
    if t_ttfs is None:
        t_ttfs, why = max(int(t) for t in tuned["ttfs"]), "largest T tried, not lossless"
    if t_ttfs != T:
        rows.append(row(f"ttfs+ft@T{t_ttfs}", f"TTFS T={t_ttfs}, fine-tuned ({why})", "torch twin",
                        tuned["ttfs"][str(t_ttfs)]))  # fmt: skip
    snn_rows = rows[1:]
    energy = _energy({r["label"]: (r["spikes_per_image"], r["latency_steps"]) for r in snn_rows})
    lossless = {
        "criterion": f"SNN accuracy >= ANN accuracy - {LOSSLESS_POINTS} points",
        **{r["label"]: r["accuracy"] >= ann_acc - LOSSLESS_POINTS / 100 for r in snn_rows},
        "smallest_T": {
            kind: {
                "kernels from activations": _smallest_lossless(sweep_res[kind], ann_acc),
                "fine-tuned": _smallest_lossless(tuned[kind], ann_acc),
            }
            for kind in KINDS
        },
    }
    metrics = {
        "dataset": "digits",
        "test_images": len(x_test),
        "T": T,
        "ann_accuracy": ann_acc,
        "snn_accuracy": {r["label"]: r["accuracy"] for r in snn_rows},
        "latency_steps": {r["label"]: r["latency_steps"] for r in snn_rows},
        "spikes_per_image": {r["label"]: r["spikes_per_image"] for r in snn_rows},
        "energy": energy,
        "lossless": lossless,
        "sweep": {"kernels from activations": sweep_res, "fine-tuned": tuned},
        "brian2": {
            "accuracy": brian_acc,
            "copies": cfg["copies"],
            "target": cfg["target"],
            "seconds": brian.timings,
            "check": check,
            "verdict": verdict,
        },
        "timings_s": timings,
    }
    table = _markdown_table(rows, energy)
    sweep_table = _sweep_table(sweep_res, tuned, ann_acc)
    fig1 = figure_accuracy_vs_T(run, sweep_res, tuned, ann_acc)
    fig2 = figure_raster(
        run,
        snn,
        brian,
        0,
        f"Brian2: spikes for test image 0 (label {int(y_test[0])}), SC-TTFS T={T}, fine-tuned",
    )
    timings["total"] = time.perf_counter() - t_start
    run.write_json("metrics.json", metrics)
    smallest = lossless["smallest_T"]

    def smallest_text(kind: str, what: str, tried: list) -> str:
        t = smallest[kind][what]
        return f"{t} ({what})" if t is not None else f"none of {tried} ({what})"

    summary = (
        f"Smallest window T at which the SNN is lossless (accuracy >= ANN - {LOSSLESS_POINTS} points): "
        + "; ".join(
            f"{k.upper()}: {smallest_text(k, 'kernels from activations', cfg['sweep'])}, "
            f"{smallest_text(k, 'fine-tuned', cfg['fine_tune_sweep'][k])}"
            for k in KINDS
        )
    )
    report = (
        f"# SC-TTFS demo: digits CNN, {len(x_test)} test images, T = {T}\n\n{table}\n\n{energy_note(energy)}\n\n"
        f"## Accuracy (%) vs window T (torch twin, float64)\n\n{sweep_table}\n\n{summary}\n\n{verdict}\n"
    )
    run.write_text("report.md", report)
    if STAGE_HOOK is not None:
        STAGE_HOOK(run, "report")
    print(f"\n{table}\n\n{energy_note(energy)}\n\n{sweep_table}\n\n{summary}\n\n{verdict}\n")
    print(f"Wrote {run.path('report.md')}, {run.path('metrics.json')},\n      {fig1},\n      {fig2}")
    print(f"Total {timings['total']:.0f} s")
    if not check["identical"]:
        raise CheckFailed(verdict)
    return 0


def energy_note(energy: dict) -> str:
    return (
        "Energy: eq. 25, E = N E_i + L E_l (N spikes per image, L latency in steps), TrueNorth "
        f"(E_i, E_l) = {PLATFORMS['truenorth']}, SpiNNaker {PLATFORMS['spinnaker']}; normalization: "
        + str(energy["normalization"])
    )


def _markdown_table(rows: list, energy: dict) -> str:
    norm = energy["normalized"] or None
    src = norm if norm else energy["raw"]
    tag = "" if norm else " (unnormalized)"
    lines = [
        "| network | engine | accuracy (%) | vs ANN (points) | latency (steps) | spikes / image "
        f"| E TrueNorth{tag} | E SpiNNaker{tag} |",
        "|" + "---|" * 8,
    ]
    ann = rows[0]["accuracy"]
    for r in rows:
        snn = r["latency_steps"] is not None
        cells = [
            r["network"], r["engine"], f"{100 * r['accuracy']:.2f}",
            f"{100 * (r['accuracy'] - ann):+.2f}" if snn else "",
            str(r["latency_steps"]) if snn else "",
            f"{r['spikes_per_image']:.0f}" if snn else "",
            f"{src['truenorth'][r['label']]:.3f}" if snn else "",
            f"{src['spinnaker'][r['label']]:.3f}" if snn else "",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sweep_table(sweep: dict, tuned: dict, ann_acc: float) -> str:
    Ts = sorted({int(t) for k in KINDS for t in (*sweep[k], *tuned[k])})
    lines = [
        f"| T | latency | SC-TTFS | SC-TTFS fine-tuned | TTFS | TTFS fine-tuned | (ANN {100 * ann_acc:.2f}) |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in Ts:
        cell = lambda d, k, t=t: f"{100 * d[k][str(t)]['accuracy']:.2f}" if str(t) in d[k] else ""  # noqa: E731
        lat = next(d[k][str(t)]["latency_steps"] for d in (sweep, tuned) for k in KINDS if str(t) in d[k])
        lines.append(
            f"| {t} | {lat} | {cell(sweep, 'sc-ttfs')} | {cell(tuned, 'sc-ttfs')} | {cell(sweep, 'ttfs')} "
            f"| {cell(tuned, 'ttfs')} | |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# train / convert / simulate
# --------------------------------------------------------------------------------------------
def _train_config(args: argparse.Namespace) -> dict:
    model = args.model or ("digits-cnn" if args.dataset == "digits" else "vgg16")
    return {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "model": model,
        "model_kwargs": {},
        "epochs": args.epochs,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
    }


def _run_dir(args: argparse.Namespace, default_name: str) -> Path:
    return Path(args.run_dir) if args.run_dir else Path("runs") / (args.name or default_name)


def cmd_train(args: argparse.Namespace) -> int:
    """Train an ANN -> ann.pt (state_dict), metrics.json."""
    cfg = _train_config(args)
    ds = load_dataset(cfg["dataset"], cfg["data_root"])  # before creating the run directory
    run = Run(
        _run_dir(args, f"{cfg['model']}-{cfg['dataset']}"),
        resume=args.resume,
        progress=not args.no_progress,
        command="train",
    )
    run.store_config(cfg)
    _set_threads(args.threads)
    from .training import evaluate

    model = _train_stage(run, cfg, ds)
    acc = evaluate(model, ds.x_test, ds.y_test)
    run.update_json("metrics.json", {"ann_accuracy": acc})
    print(f"Wrote {run.path('ann.pt')} (ANN test accuracy {100 * acc:.2f} %)")
    return 0


def _trained_run(args: argparse.Namespace, command: str):
    """The run directory of a finished ``scttfs train``, its dataset and ANN."""
    run_dir = _run_dir(args, "digits-cnn-digits")
    cfg_path = run_dir / "config.json"
    if (
        not cfg_path.exists()
        or "train" not in json.loads(cfg_path.read_text())
        or not (run_dir / "ann.pt").exists()
    ):
        raise UsageError(
            f"{run_dir} holds no trained ANN (expected config.json and ann.pt written by `scttfs train`); "
            "run `scttfs train --run-dir DIR` first, or pass the --run-dir of a finished training"
        )
    tcfg = json.loads(cfg_path.read_text())["train"]
    ds = load_dataset(tcfg["dataset"], args.data_root or tcfg.get("data_root"))
    run = Run(run_dir, resume=args.resume, progress=not args.no_progress, command=command)
    from .conversion import load_state_dict

    model = build_ann(tcfg["model"], ds.num_classes, tcfg["model_kwargs"], tcfg["seed"], ds.input_shape[0])
    load_state_dict(model, run_dir / "ann.pt").eval()
    return run, ds, model, tcfg


def _label(kind: str, T: int, fine_tuned: bool) -> str:
    return f"{kind}-T{T}" + ("-ft" if fine_tuned else "")


def cmd_convert(args: argparse.Namespace) -> int:
    """Kernels from activations (+ optional fine-tuning) -> snn-<kind>-T<T>[-ft].npz."""
    run, ds, ann, tcfg = _trained_run(args, "convert")
    cfg = {
        "T": args.T,
        "kind": args.kind,
        "calibration_images": args.calibration_images,
        "fine_tune_epochs": args.fine_tune_epochs,
        "fine_tune_lr": args.fine_tune_lr,
        "fine_tune_kernel_lr": args.fine_tune_kernel_lr,
        "fine_tune_batch_size": args.batch_size,
        "seed": tcfg["seed"],
    }
    run.store_config(cfg)
    _set_threads(args.threads)
    from .conversion import convert
    from .training import export, init_codes

    kinds = KINDS if args.kind == "both" else (args.kind,)
    results = {}
    for kind in kinds:
        label = _label(kind, args.T, False)

        def codes_stage(kind=kind, label=label) -> None:
            codes = init_codes(ann, ds.x_train, args.T, kind, max_images=args.calibration_images)
            run.write_json(f"codes-{label}.json", _codes_to_json(codes))

        run.stage(f"kernels {label}", [f"codes-{label}.json"], codes_stage)
        codes = _codes_from_json(run.read_json(f"codes-{label}.json"))
        snn = _network_stage(run, label, lambda codes=codes: convert(ann, ds.input_shape, code=codes))
        results[label] = _twin_eval(snn, ds.x_test, ds.y_test)
        if args.fine_tune_epochs > 0:
            twin = _fine_tune_stage(run, ann, codes, ds, cfg, label)

            def exported(twin=twin):
                ann2, codes2 = export(twin)
                return convert(ann2, ds.input_shape, code=codes2)

            ft = _label(kind, args.T, True)
            snn = _network_stage(run, ft, exported)
            results[ft] = _twin_eval(snn, ds.x_test, ds.y_test)
    metrics = run.read_json("metrics.json") if run.path("metrics.json").exists() else {}
    metrics.setdefault("snn", {}).update(results)
    run.write_json("metrics.json", metrics)
    for label, r in results.items():
        print(
            f"{label}: accuracy {100 * r['accuracy']:.2f} %, latency {r['latency_steps']} steps, "
            f"{r['spikes_per_image']:.0f} spikes/image -> {run.path(f'snn-{label}.npz')}"
        )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a converted network in Brian2 or the torch twin -> sim-*.npz, metrics.json."""
    run, ds, _ann, _ = _trained_run(args, "simulate")
    label = _label(args.kind, args.T, args.fine_tuned)
    if not run.path(f"snn-{label}.npz").exists():
        raise UsageError(
            f"{run.path(f'snn-{label}.npz')} does not exist; run `scttfs convert --run-dir {run.dir} "
            f"--kind {args.kind} --T {args.T}"
            + (" --fine-tune-epochs N" if args.fine_tuned else "")
            + "` first"
        )
    cfg = {
        "network": label,
        "backend": args.backend,
        "images": args.images,
        "copies": args.copies,
        "target": args.target,
        "check": args.check,
    }
    run.store_config(cfg)
    _set_threads(args.threads)
    import numpy as np

    from .network import SpikingNetwork

    snn = SpikingNetwork.load(run.path(f"snn-{label}.npz"))
    x, y = ds.x_test, ds.y_test
    if args.images is not None:
        x, y = x[: args.images], y[: args.images]
    res = _simulate_stage(
        run, snn, x, label=label, backend=args.backend, copies=args.copies, target=args.target
    )
    out = {
        "accuracy": res.accuracy(y.numpy()),
        "spikes_per_image": float(np.mean(res.spikes_per_input)),
        "latency_steps": int(res.latency_steps),
        "images": len(x),
        "timings_s": res.timings,
    }
    if res.memory:
        out["memory_bytes"] = res.memory
    check = None
    if args.check and args.backend == "brian2":
        check = _compare(res, snn.simulate(x, backend="torch", record=True))
        out["check"] = check
    metrics = run.read_json("metrics.json") if run.path("metrics.json").exists() else {}
    metrics.setdefault("simulations", {})[f"{label}-{args.backend}"] = out
    run.write_json("metrics.json", metrics)
    fig = figure_raster(
        run,
        snn,
        res,
        0,
        f"{args.backend}: spikes for test image 0, {label}",
        figure=f"raster-{label}-{args.backend}",
    )
    print(
        f"{label} on {args.backend}: accuracy {100 * out['accuracy']:.2f} % on {len(x)} images, "
        f"latency {out['latency_steps']} steps, {out['spikes_per_image']:.0f} spikes/image; wrote {fig}"
    )
    if check is not None:
        print(
            "Brian2 and the torch twin agree spike for spike"
            if check["identical"]
            else "MISMATCH with the torch twin"
        )
        if not check["identical"]:
            raise CheckFailed(f"Brian2 and the torch twin disagree: {check['layers']}")
    return 0


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _common(p: argparse.ArgumentParser, default_name: str) -> None:
    g = p.add_argument_group("run directory")
    g.add_argument(
        "--run-dir", help=f"where everything is written (default: runs/<name>, name {default_name!r})"
    )
    g.add_argument("--name", help="name of the run under runs/ when --run-dir is not given")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: skip stages whose output exists, resume training "
        "from the last epoch",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch threads (default 1: these small networks gain little from more, and on a busy "
        "machine threads waiting for each other made training 5x slower)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scttfs",
        description="SC-TTFS spiking networks (Feng et al. 2024) in Brian2 with a torch twin: train an ANN, "
        "convert it, fine-tune the kernels, simulate.",
        epilog="Run `scttfs <command> --help` for the options of a command. `scttfs demo` runs everything on "
        "the bundled digits.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on digits (train, convert, fine-tune, Brian2, report)",
        description=cmd_demo.__doc__ + " Writes report.md, metrics.json and figures/ into the run "
        "directory (default runs/demo).",
    )
    _common(p, "demo")
    p.add_argument(
        "--quick", action="store_true", help="small CNN, few epochs and images (a smoke test, ~30 s)"
    )
    p.add_argument("--T", type=_positive_int, help=f"window length in steps (default {DEMO['T']})")
    p.add_argument(
        "--sweep",
        type=_positive_int,
        nargs="+",
        metavar="T",
        help=f"windows of the accuracy-vs-T sweep (default {DEMO['sweep']})",
    )
    p.add_argument(
        "--fine-tune-sweep",
        type=_positive_int,
        nargs="*",
        metavar="T",
        help="windows at which both codes are fine-tuned (default: 2 3 4 for SC-TTFS, 2 3 4 6 8 for TTFS; "
        "T is always included)",
    )
    p.add_argument("--epochs", type=_positive_int, help=f"ANN training epochs (default {DEMO['epochs']})")
    p.add_argument(
        "--fine-tune-epochs",
        type=_positive_int,
        help=f"fine-tuning epochs (default {DEMO['fine_tune_epochs']})",
    )
    p.add_argument(
        "--fine-tune-lr",
        type=_positive_float,
        help=f"initial fine-tuning learning rate of BatchNorm (default {DEMO['fine_tune_lr']}; the paper: 1e-5 "
        "over 100 epochs)",
    )
    p.add_argument(
        "--fine-tune-kernel-lr",
        type=_positive_float,
        help=f"learning rate of the kernels' alpha, beta, k (default {DEMO['fine_tune_kernel_lr']}; see "
        "scttfs_brian.training on why it is 10x smaller)",
    )
    p.add_argument("--images", type=_positive_int, help="test images to simulate (default: all 450)")
    p.add_argument("--copies", type=_positive_int, help=f"Brian2 network copies (default {DEMO['copies']})")
    p.add_argument(
        "--target",
        choices=("numpy", "cython", "cpp_standalone", "cuda_standalone"),
        help="Brian2 code generation target (default numpy)",
    )
    p.add_argument("--seed", type=int, help="seed of the weights and the shuffling (default 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train an ANN (digits, CIFAR-10/100)", description=cmd_train.__doc__)
    _common(p, "<model>-<dataset>")
    p.add_argument("--dataset", choices=DATASETS, default="digits", help="data set (default digits)")
    p.add_argument("--data-root", help="folder with the CIFAR archive (default ./data); digits needs none")
    p.add_argument("--model", choices=MODELS, help="network (default digits-cnn for digits, vgg16 for CIFAR)")
    p.add_argument("--epochs", type=_positive_int, default=20, help="epochs (default 20)")
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="initial learning rate (default 1e-2)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer (default adam)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "convert",
        help="convert a trained ANN to SC-TTFS / TTFS (optionally fine-tuned)",
        description=cmd_convert.__doc__ + " Reads ann.pt and config.json of a `scttfs train` run.",
    )
    _common(p, "digits-cnn-digits")
    p.add_argument("--data-root", help="folder with the CIFAR archive (default: the one used in training)")
    p.add_argument("--T", type=_positive_int, default=4, help="window length in steps (default 4)")
    p.add_argument("--kind", choices=(*KINDS, "both"), default="sc-ttfs", help="code (default sc-ttfs)")
    p.add_argument(
        "--calibration-images",
        type=_positive_int,
        default=512,
        help="training images whose activations set the kernels (default 512)",
    )
    p.add_argument(
        "--fine-tune-epochs",
        type=_nonnegative_int,
        default=0,
        help="epochs of kernel + BN fine-tuning, 0 = none (default 0)",
    )
    p.add_argument(
        "--fine-tune-lr", type=_positive_float, default=1e-2, help="BatchNorm learning rate (default 1e-2)"
    )
    p.add_argument(
        "--fine-tune-kernel-lr",
        type=_positive_float,
        default=1e-3,
        help="kernel learning rate (default 1e-3)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=128, help="fine-tuning batch size (default 128)"
    )
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "simulate",
        help="simulate a converted network (Brian2 or the torch twin)",
        description=cmd_simulate.__doc__,
    )
    _common(p, "digits-cnn-digits")
    p.add_argument("--data-root", help="folder with the CIFAR archive (default: the one used in training)")
    p.add_argument("--backend", choices=("brian2", "torch"), default="brian2", help="engine (default brian2)")
    p.add_argument(
        "--kind", choices=KINDS, default="sc-ttfs", help="which converted network (default sc-ttfs)"
    )
    p.add_argument("--T", type=_positive_int, default=4, help="its window length (default 4)")
    p.add_argument("--fine-tuned", action="store_true", help="the fine-tuned network (snn-*-ft.npz)")
    p.add_argument("--images", type=_positive_int, help="number of test images (default: all)")
    p.add_argument(
        "--copies",
        type=_positive_int,
        default=8,
        help="Brian2 network copies (default 8: fastest for the digits CNN, measured)",
    )
    p.add_argument(
        "--target",
        choices=("numpy", "cython", "cpp_standalone", "cuda_standalone"),
        default="numpy",
        help="Brian2 target (default numpy)",
    )
    p.add_argument(
        "--check", action="store_true", help="compare spike for spike with the torch twin (brian2)"
    )
    p.set_defaults(func=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scttfs`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and argparse errors (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except UsageError as err:
        print(f"scttfs {args.command}: error: {err}", file=sys.stderr)
        return 2
    except CheckFailed as err:
        print(f"scttfs {args.command}: check failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = f" --run-dir {args.run_dir}" if args.run_dir else ""
        print(
            f"\nscttfs {args.command}: interrupted; continue with `scttfs {args.command}{hint} --resume` "
            "(and the same options)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
