"""The multi-seed digits study: conversion and fine-tuning over seeds, codes and windows.

For each seed the study trains the digits CNN (:class:`~scttfs_brian.models.DigitsCNN`, initial
weights and shuffling from the seed; without the validation split that fine-tuning selects on,
:func:`~scttfs_brian.training.without_validation`), then for each code (SC-TTFS, TTFS) and window ``T``:

* ``method="activations"``: kernels fitted to the ANN's activations
  (:func:`~scttfs_brian.training.init_codes`), no fine-tuning: the conversion as it was;
* ``method="bias-corrected"``: the same kernels and the bias correction of the expected
  quantization error (:func:`~scttfs_brian.training.bias_corrected`), no fine-tuning;
* ``method="fine-tuned"``: distillation fine-tuning (kernels, BatchNorm and weights) with model
  selection on a validation split of the training images, each window started from its neighbour
  (:func:`~scttfs_brian.training.fine_tune_windows`).

Every network is converted (BatchNorm folded, eq. 24) and run on the 450 test images by the torch
engine in float64; it is measured against the ANN (float64) by its **agreement** (share of test
images with the ANN's prediction), the mean ``|output - ANN output|``, its accuracy, spikes per
image and latency. Once per seed, the largest network of the study (first code, largest ``T``,
fine-tuned) is simulated in Brian2 on ``brian_images`` test images and compared with the torch
engine spike for spike (:meth:`~scttfs_brian.results.SimulationResult.compare`): the numbers are
the reference model's.

Each entry of the JSON's ``runs`` holds ``seed, code, T, method, fine_tuned, accuracy, agreement,
mean_abs_output_diff, ann_accuracy, spikes_per_image, latency_steps`` and, per test image, whether
the SNN agrees with the ANN and whether it is correct (``agrees``, ``correct``: ``numpy.packbits``
as hex, for the intervals over images); fine-tuned entries add ``start`` (the network the sweep
started from), ``selected_epoch`` and its ``validation_agreement``. ``brian_checks`` holds one
:meth:`~scttfs_brian.results.Agreement.to_dict` per seed.

**Execution.** The work is a set of tasks (:func:`~scttfs_brian.pipeline.cluster.run_tasks`):
per seed the ANN's training; per (seed, code, ``T``) each conversion without fine-tuning
(``activations``, and ``bias-corrected`` when the study does not fine-tune); per (seed, code)
the fine-tuning sweep, one task because it is sequential in ``T`` by design (each window starts
from the network of the previous one; it also writes the bias-corrected point of each window,
its start candidate);
per seed the Brian2 check, after the sweep of the network it checks. ``workers=1`` runs them in
this process; on a Dask cluster (``--workers N``: a ``LocalCluster`` of ``N`` processes, or
``--scheduler ADDRESS``: a running one, docs/cluster.md) each is a Dask task with its inputs as
dependencies. Every task sets torch to one thread itself (the numbers depend on the thread
count), so the JSON is the same whatever runs it. The workers write into the work directory:
on several machines it must be on a shared file system. A task that raises ends the study with
its exception (the others are cancelled); one whose worker dies is recomputed by Dask.

**Resume.** Each finished grid point is written to ``<work_dir>/points/`` and merged into the
JSON (atomically: a temporary file, then ``os.replace``); trained ANNs and fine-tuned networks
are kept in ``work_dir`` (default ``runs/<name of the JSON>``). Running the same command again
skips what is done and continues a fine-tuning sweep from its last finished window; on the same
machine, the JSON is the one an uninterrupted run writes (``timings`` aside).

Run it with ``python -m scttfs_brian.pipeline.study --out analysis/results/digits_study.json``
(``make study``); :func:`~scttfs_brian.pipeline.study_summary.write_summary` writes the markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .rundir import atomic_write

__all__ = ["StudyConfig", "run_study", "main", "machine", "METHODS"]

#: The three ways a network is obtained, in the order of the tables.
METHODS = ("activations", "bias-corrected", "fine-tuned")


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs (everything that changes its numbers).

    Attributes
    ----------
    seeds : tuple of int
        One ANN per seed (initial weights, shuffling, validation split).
    codes : tuple of str
        ``"sc-ttfs"`` and/or ``"ttfs"``.
    windows : tuple of int
        The sweep of ``T`` (increasing).
    fine_tuned : tuple of bool
        ``False``: the conversions without fine-tuning (both methods); ``True``: fine-tuning.
    epochs, lr : int, float
        ANN training (Adam, cosine annealing, batches of 64).
    fine_tune_epochs, fine_tune_lr, fine_tune_kernel_lr, fine_tune_weight_lr, layer_weight, validation : ...
        :func:`~scttfs_brian.training.fine_tune` (distillation; ``fine_tune_weight_lr`` None: the
        weights stay frozen, as in the paper).
    ann_holdout : bool
        Train the ANN without the validation split (so that model selection sees images as new to
        the ANN as the test images; :func:`~scttfs_brian.training.without_validation`).
    calibration_images : int
        Training images for the kernels and the bias correction.
    brian_images : int
        Test images of the Brian2 check (0: no check).
    model_kwargs : dict
        For :class:`~scttfs_brian.models.DigitsCNN`.
    """

    seeds: tuple[int, ...] = tuple(range(10))
    codes: tuple[str, ...] = ("sc-ttfs", "ttfs")
    windows: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    fine_tuned: tuple[bool, ...] = (False, True)
    epochs: int = 20
    lr: float = 1e-2
    fine_tune_epochs: int = 20
    fine_tune_lr: float = 3e-2
    fine_tune_kernel_lr: float = 1e-2
    fine_tune_weight_lr: float | None = 1e-3
    layer_weight: float = 1.0
    validation: float = 0.2
    ann_holdout: bool = True
    calibration_images: int = 512
    brian_images: int = 100
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [c for c in self.codes if c not in ("sc-ttfs", "ttfs")]
        if bad or not self.codes:
            raise ValueError(f"codes must be 'sc-ttfs' and/or 'ttfs' (got {self.codes!r})")
        w = list(self.windows)
        if not w or any(t < 1 for t in w) or w != sorted(set(w)):
            raise ValueError(f"windows must be increasing positive ints (got {self.windows!r})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct ints (got {self.seeds!r})")
        if not set(self.fine_tuned) <= {False, True} or not self.fine_tuned:
            raise ValueError(f"fine_tuned must hold False and/or True (got {self.fine_tuned!r})")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m in METHODS if (m == "fine-tuned") in self.fine_tuned)

    @property
    def check(self) -> tuple[str, str, int]:
        """``(code, method, T)`` of the network checked in Brian2: the largest of the study."""
        return self.codes[0], self.methods[-1], self.windows[-1]


def machine() -> dict:
    """Where the study ran: platform, CPU model (``/proc/cpuinfo``), cores, versions."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _where(client: Any) -> dict:
    """:func:`machine` of where the tasks run: this process, or the cluster's workers (their CPU
    models joined with ``" + "`` where they differ: the numbers can depend on the CPU)."""
    if client is None:
        return machine()
    found = client.run(machine)
    cpus = sorted({m["cpu"] for m in found.values()})
    return {**found[min(found)], "cpu": " + ".join(cpus)}


# --------------------------------------------------------------------------------------------
# Work items: one Dask task each (or one call in this process). Each writes its results into
# the work directory, which every worker must see (the local disk for a LocalCluster, a shared
# file system for workers on other machines).
# --------------------------------------------------------------------------------------------
def _key(seed: int, code: str, method: str, T: int) -> str:
    return f"seed{seed}-{code}-{method}-T{T}"


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text + "\n"))


def _one_torch_thread() -> None:
    """Run torch on one thread in this process: the study's numbers depend on the thread count
    (reductions split differently), and its tiny models gain nothing from more. Every task sets
    it itself, in a Dask worker as in this process, whatever started the worker (so no worker
    plugin is needed); a worker keeps it (two tasks of a multi-threaded worker would otherwise
    restore each other's count under the other's feet)."""
    import torch

    torch.set_num_threads(1)


def _dataset():
    from ..data import digits

    return digits(normalize=True)


def _ann_path(work: Path, seed: int) -> Path:
    return work / f"ann-seed{seed}.pt"


def _ann(config: StudyConfig, seed: int, work: Path, ds=None):
    """The seed's trained ANN (trained once, then read from ``work``)."""
    import torch

    from ..conversion import load_state_dict
    from ..models import DigitsCNN
    from ..training import train_ann, without_validation

    torch.manual_seed(seed)
    model = DigitsCNN(**config.model_kwargs)
    path = _ann_path(work, seed)
    if path.exists():
        return load_state_dict(model, path).eval()
    ds = ds or _dataset()
    if config.ann_holdout:
        ds = without_validation(ds, config.validation, seed)
    train_ann(model, ds, epochs=config.epochs, lr=config.lr, weight_decay=0.0, seed=seed, progress=False)
    atomic_write(path, lambda tmp: torch.save(model.state_dict(), tmp))
    return model.eval()


def _bits(mask) -> str:
    import numpy as np

    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def _network(spiking_or_codes, ann, ds):
    """The converted network of a spiking ANN (BatchNorm folded, eq. 24) or of ``{layer: code}``."""
    from ..conversion import convert
    from ..training import export

    if isinstance(spiking_or_codes, dict):
        return convert(ann, ds.input_shape, code=spiking_or_codes)
    ann2, codes = export(spiking_or_codes)
    return convert(ann2, ds.input_shape, code=codes)


def _measure(snn, ds, reference) -> dict:
    """The metrics of one grid point: the test split on the torch engine (float64) vs the ANN."""
    import numpy as np

    from ..training import agreement

    res = snn.simulate(ds.x_test.double(), backend="torch")
    a = agreement(res.outputs, reference)
    correct = res.predictions == ds.y_test.numpy()
    return {
        "accuracy": float(correct.mean()),
        "agreement": a["agreement"],
        "mean_abs_output_diff": a["mean_abs_output_diff"],
        "spikes_per_image": float(np.mean(res.spikes_per_input)),
        "latency_steps": int(res.latency_steps),
        "agrees": _bits(a["agrees"]),
        "correct": _bits(correct),
    }


@dataclass
class _Seed:
    """What every grid point of a (seed, code) reads: the data, the seed's ANN, its outputs on
    the test split (the reference), the calibration images, the fields common to its rows."""

    config: StudyConfig
    seed: int
    code: str
    work: Path
    ds: Any
    ann: Any
    reference: Any
    x_cal: Any
    base: dict

    @classmethod
    def load(cls, config: StudyConfig, seed: int, code: str, work: str | Path) -> _Seed:
        from ..training import ann_outputs, calibration_set

        work = Path(work)
        ds = _dataset()
        ann = _ann(config, seed, work, ds)
        reference = ann_outputs(ann, ds.x_test)
        base = {
            "seed": seed,
            "code": code,
            "ann_accuracy": float((reference.argmax(1) == ds.y_test).double().mean()),
        }
        x_cal = calibration_set(ds, config.calibration_images, config.validation, seed)
        return cls(config, seed, code, work, ds, ann, reference, x_cal, base)

    def point(self, method: str, T: int) -> Path:
        return _point_path(self.work, _key(self.seed, self.code, method, T))

    def record(self, method: str, T: int, net, **extra) -> None:
        """Measure the network ``net`` (a spiking ANN or ``{layer: code}``) and write its point."""
        metrics = _measure(_network(net, self.ann, self.ds), self.ds, self.reference)
        row = {
            **self.base,
            "T": T,
            "method": method,
            "fine_tuned": method == "fine-tuned",
            **metrics,
            **extra,
        }
        _write_json(self.point(method, T), row)

    def bias_corrected(self, T: int):
        """The bias-corrected conversion at ``T`` (float64), as the study has always computed it:
        on every calibration image when the study fine-tunes (the start network of
        :func:`~scttfs_brian.training.fine_tune_windows`, identical), with
        :func:`~scttfs_brian.training.bias_corrected`'s own image limit when it does not."""
        import torch

        from ..training import bias_corrected

        limit = {"max_images": self.config.calibration_images} if True in self.config.fine_tuned else {}
        return bias_corrected(self.ann, self.x_cal, T, self.code, dtype=torch.float64, **limit)


def _point_path(work: Path, name: str) -> Path:
    return Path(work) / "points" / f"{name}.json"


def _state_path(work: Path, seed: int, code: str, T: int) -> Path:
    return Path(work) / "states" / f"seed{seed}-{code}-T{T}.pt"


def _train_task(config: StudyConfig, seed: int, work: str) -> str:
    """Train the seed's ANN into ``work`` (the first task of a seed; the others read it)."""
    _one_torch_thread()
    _ann(config, seed, Path(work))
    return f"seed {seed} ANN"


def _conversion_task(config: StudyConfig, seed: int, code: str, method: str, T: int, work: str) -> str:
    """One grid point without fine-tuning: kernels from activations, or bias-corrected."""
    from ..training import init_codes

    if not _point_path(Path(work), _key(seed, code, method, T)).exists():
        _one_torch_thread()
        s = _Seed.load(config, seed, code, work)
        net = init_codes(s.ann, s.x_cal, T, code) if method == "activations" else s.bias_corrected(T)
        s.record(method, T, net)
    return f"seed {seed} {code} {method} T={T}"


def _sweep_done(config: StudyConfig, seed: int, code: str, work: Path) -> int:
    """How many windows of the (seed, code) fine-tuning sweep are finished (point and network
    saved); the sweep is sequential, so the finished windows are a prefix of ``config.windows``."""
    n = 0
    for T in config.windows:
        if not (
            _point_path(work, _key(seed, code, "fine-tuned", T)).exists()
            and _state_path(work, seed, code, T).exists()
        ):
            break
        n += 1
    return n


def _sweep_task(config: StudyConfig, seed: int, code: str, work: str) -> str:
    """The fine-tuning sweep of one (seed, code): one task, sequential in ``T`` by design.

    Each window starts from the better (on the validation split) of its bias-corrected
    conversion and the network fine-tuned at the window before
    (:func:`~scttfs_brian.training.fine_tune_windows`), so window ``T`` cannot start before the
    previous one has finished. After each window the task saves the network (``states/``) and
    writes the point; run again (or recomputed after its worker died), it continues after its
    last finished window from the saved network, which gives the uninterrupted numbers. It also
    writes the bias-corrected point of each window it runs: that network is the window's start
    candidate (:func:`~scttfs_brian.training.fine_tune_windows` computes it exactly as
    :meth:`_Seed.bias_corrected` does), so it is not computed twice.
    """
    import torch

    from ..training import fine_tune_windows

    _one_torch_thread()
    s = _Seed.load(config, seed, code, work)
    n = _sweep_done(config, seed, code, s.work)
    todo = list(config.windows[n:])
    if not todo:
        return f"seed {seed} {code} fine-tuning sweep"
    previous = (
        (config.windows[n - 1], _load_spiking(s.ann, code, s.work, seed, config.windows[n - 1]))
        if n
        else None
    )
    sweep = fine_tune_windows(
        s.ann,
        s.ds,
        todo,
        code,
        previous=previous,
        calibration_images=config.calibration_images,
        epochs=config.fine_tune_epochs,
        lr=config.fine_tune_lr,
        kernel_lr=config.fine_tune_kernel_lr,
        weight_lr=config.fine_tune_weight_lr,
        layer_weight=config.layer_weight,
        validation=config.validation,
        seed=seed,
        progress=False,
    )
    for T, net, info in sweep:
        if "bias-corrected" in config.methods and not s.point("bias-corrected", T).exists():
            s.record("bias-corrected", T, info["bias_corrected"])  # the sweep's start candidate
        state = net.state_dict()
        atomic_write(_state_path(s.work, seed, code, T), lambda tmp, st=state: torch.save(st, tmp))
        history = info["history"]
        selected = history["selected_epoch"]
        s.record(
            "fine-tuned",
            T,
            net,
            start=info["start"],
            selected_epoch=selected,
            validation_agreement=history["validation_agreement"][selected],
        )
    return f"seed {seed} {code} fine-tuning sweep"


def _load_spiking(ann, code: str, work: Path, seed: int, T: int):
    """The spiking ANN fine-tuned at ``T``, read back from ``work`` (float64, eval mode)."""
    import torch

    from ..training import spiking_ann_from_state

    return spiking_ann_from_state(ann, code, T, torch.load(_state_path(work, seed, code, T), weights_only=True))


def _brian_task(config: StudyConfig, seed: int, work: str) -> str:
    """Brian2 vs the torch engine, spike for spike, on the study's largest network (once per
    seed; after the sweep that produced it)."""
    from ..brian.distributed import BRIAN_LOCK, import_brian2

    code, method, T = config.check
    path = _point_path(Path(work), f"brian-seed{seed}")
    if path.exists():
        return f"seed {seed} Brian2 check"
    _one_torch_thread()
    s = _Seed.load(config, seed, code, work)
    x = s.ds.x_test[: config.brian_images].double()
    net = _load_spiking(s.ann, code, s.work, seed, T) if method == "fine-tuned" else s.bias_corrected(T)
    snn = _network(net, s.ann, s.ds)
    import_brian2()  # (in a worker's thread: see import_brian2)
    with BRIAN_LOCK:  # Brian2's device and preferences are global: one run per process at a time
        t0 = time.perf_counter()
        brian = snn.simulate(x, backend="brian2", record=True, progress=False)
        seconds = time.perf_counter() - t0
    check = brian.compare(snn.simulate(x, backend="torch", record=True)).to_dict()
    check.update(seed=seed, code=code, method=method, T=T, images=len(x))
    _write_json(path, check)
    _write_json(_point_path(s.work, f"brian-seed{seed}.time"), {"seconds": seconds})
    return f"seed {seed} Brian2 check"


def _expected_points(config: StudyConfig) -> list[str]:
    """The names of the point files a finished study has (``points/<name>.json``)."""
    names = [
        _key(seed, code, method, T)
        for seed in config.seeds
        for code in config.codes
        for method in config.methods
        for T in config.windows
    ]
    return names + ([f"brian-seed{seed}" for seed in config.seeds] if config.brian_images else [])


def _tasks(config: StudyConfig, work: Path) -> list:
    """The study's work that is not done yet, as tasks in an order a single process can run.

    Per seed: the ANN (unless trained already), then per code every point without fine-tuning
    (a task each; with fine-tuning, the bias-corrected points of the windows the sweep still has
    to run come from the sweep) and the fine-tuning sweep (one task), then the Brian2 check (after the sweep
    of the network it checks). On a cluster the ANNs go first, then the sweeps (the long
    tasks), the Brian2 checks and the short conversions (priorities)."""
    from .cluster import Task

    w = str(work)
    tasks = []
    for seed in config.seeds:
        train = f"seed{seed}-ann"
        need = () if _ann_path(work, seed).exists() else (train,)
        todo, sweeps = [], {}
        for code in config.codes:
            fine_tunes = "fine-tuned" in config.methods
            swept = _sweep_done(config, seed, code, work) if fine_tunes else 0
            for method in config.methods:
                if method == "fine-tuned":
                    if swept < len(config.windows):
                        sweeps[code] = f"seed{seed}-{code}-fine-tuning-sweep"
                        todo.append(
                            Task(sweeps[code], _sweep_task, (config, seed, code, w), need, priority=2)
                        )
                    continue
                windows = config.windows
                if method == "bias-corrected" and fine_tunes:
                    windows = windows[:swept]  # the sweep writes the others (its start candidates)
                for T in windows:
                    if not _point_path(work, _key(seed, code, method, T)).exists():
                        args = (config, seed, code, method, T, w)
                        todo.append(Task(_key(seed, code, method, T), _conversion_task, args, need))
        code, method, _ = config.check
        if config.brian_images and not _point_path(work, f"brian-seed{seed}").exists():
            after = need + ((sweeps[code],) if code in sweeps and method == "fine-tuned" else ())
            todo.append(Task(f"seed{seed}-brian2", _brian_task, (config, seed, w), after, priority=1))
        if todo and need:
            tasks.append(Task(train, _train_task, (config, seed, w), priority=3))
        tasks += todo
    return tasks


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------
def _load(out: Path, config: StudyConfig) -> dict:
    if not out.exists():
        return {"runs": [], "brian_checks": []}
    old = json.loads(out.read_text())
    mine, theirs = config.to_dict(), dict(old.get("config", {}))
    mine.pop("seeds"), theirs.pop("seeds", None)
    if mine != theirs:
        diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
        raise ValueError(
            f"{out} holds a study with another configuration ({diff}, as (stored, asked)); "
            "pass another --out (and --work-dir), or delete it to start again"
        )
    return old


def _merge(out: Path, config: StudyConfig, work: Path, old: dict, meta: dict) -> int:
    """Merge the point files into ``out`` (atomically); return the number of runs."""
    runs = {(r["seed"], r["code"], r["method"], r["T"]): r for r in old.get("runs", [])}
    checks = {c["seed"]: c for c in old.get("brian_checks", [])}
    timings = dict(old.get("timings", {}))
    for p in sorted((work / "points").glob("*.json")):
        obj = json.loads(p.read_text())
        if p.name.endswith(".time.json"):
            timings[f"brian2_seed{p.name.split('seed')[1].split('.')[0]}_s"] = obj["seconds"]
        elif p.name.startswith("brian-"):
            checks[obj["seed"]] = obj
        else:
            runs[(obj["seed"], obj["code"], obj["method"], obj["T"])] = obj
    order = {m: i for i, m in enumerate(METHODS)}
    rows = sorted(runs.values(), key=lambda r: (r["seed"], r["code"], order[r["method"]], r["T"]))
    timings["invocations"] = [
        *timings.get("invocations", []),
        *([meta["invocation"]] if meta.get("invocation") else []),
    ]
    study = {
        "description": "digits CNN converted to SC-TTFS / TTFS: agreement with the ANN over seeds "
        "(scttfs_brian.pipeline.study)",
        "config": {**config.to_dict(), "seeds": sorted({*config.seeds, *(r["seed"] for r in rows)})},
        "machine": meta["machine"],
        "command": meta["command"],
        "lossless_agreement": meta["lossless_agreement"],
        "test_images": meta["test_images"],
        "runs": rows,
        "brian_checks": [checks[s] for s in sorted(checks)],
        "timings": timings,
    }
    _write_json(out, study)
    return len(rows)


def run_study(
    config: StudyConfig,
    out_path: str | os.PathLike,
    progress: bool = True,
    *,
    workers: int = 2,
    client: Any = None,
    work_dir: str | os.PathLike | None = None,
    command: str | None = None,
    summary_path: str | os.PathLike | None = None,
    on_point: Callable[[str], None] | None = None,
) -> dict:
    """Run (or resume) the study and write ``out_path`` (JSON) and its markdown summary.

    The work is a set of tasks (:func:`~scttfs_brian.pipeline.cluster.run_tasks`): per seed the
    ANN's training; per (seed, code, method, ``T``) without fine-tuning one conversion; per
    (seed, code) the fine-tuning sweep (one task: each window starts from the previous one); per
    seed the Brian2 check, after the sweep it checks. On a Dask cluster each is a Dask task, its
    inputs as dependencies; every task writes its points into the work directory and the JSON
    is merged from them as tasks finish. Whatever runs them, the JSON is the same (``timings``
    aside): every task runs torch on one thread.

    Parameters
    ----------
    config : StudyConfig
    out_path : path
        The JSON; if it exists, its configuration must match (seeds may be added) and its runs are
        kept.
    progress : bool
        A progress bar over the grid points and Brian2 checks.
    workers : int
        Without ``client``: 1 runs the tasks one after the other in this process (no Dask); ``N``
        > 1 starts a Dask ``LocalCluster`` of ``N`` single-threaded worker processes for this call.
    client : distributed.Client, optional
        Run on this Dask cluster instead (``workers`` is ignored). Its workers must see
        ``work_dir`` (a shared file system) and have this package installed.
    work_dir : path, optional
        Trained networks and finished points (default ``runs/<stem of out_path>``).
    command : str, optional
        The command line recorded in the results (default: this process's).
    summary_path : path, optional
        The markdown summary (default ``out_path`` with ``.md``).
    on_point : callable, optional
        Called with a description after each finished task (tests interrupt here).

    Returns
    -------
    dict
        The study as written.

    Raises
    ------
    Exception
        The first failing task's own exception (the other tasks are cancelled; what finished is
        kept and merged into the JSON, so running again continues).
    """
    from ..training import LOSSLESS_AGREEMENT
    from .cluster import client_from_options, run_tasks
    from .study_summary import write_summary

    if client is None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer (got {workers!r}); 1 runs in this process")
    out = Path(out_path)
    work = (Path(work_dir) if work_dir is not None else Path("runs") / out.stem).resolve()
    (work / "points").mkdir(parents=True, exist_ok=True)
    old = _load(out, config)
    t0 = time.perf_counter()
    meta = {
        "command": command or " ".join(["python -m scttfs_brian.pipeline.study", *sys.argv[1:]]),
        "lossless_agreement": LOSSLESS_AGREEMENT,
        "test_images": len(_dataset().x_test),
    }
    expected = [_point_path(work, name) for name in _expected_points(config)]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(expected), disable=not progress, desc="study points", unit="point")

    def show() -> None:
        _merge(out, config, work, old, meta)
        bar.update(sum(p.exists() for p in expected) - bar.n)

    def finished(task, what: str) -> None:
        show()
        if on_point is not None:
            on_point(what)

    import torch

    threads, given = torch.get_num_threads(), client
    with contextlib.ExitStack() as stack:
        stack.callback(torch.set_num_threads, threads)  # the tasks set one thread when run here
        if client is None and workers > 1:
            client = stack.enter_context(client_from_options(None, workers))
        meta["machine"] = _where(client)
        invocation = {"workers": 1 if client is None else len(client.scheduler_info()["workers"])}
        if given is not None:
            invocation["scheduler"] = given.scheduler.address
        show()
        try:
            run_tasks(_tasks(config, work), client, on_done=finished, on_wait=show, prefix="study")
        except BaseException:
            with contextlib.suppress(Exception):  # keep what finished in the JSON
                show()
            raise
        finally:
            bar.close()
    meta["invocation"] = {"wall_s": time.perf_counter() - t0, **invocation}
    _merge(out, config, work, old, meta)
    study = json.loads(out.read_text())
    write_summary(study, Path(summary_path) if summary_path else out.with_suffix(".md"))
    return study


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _ints(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return tuple(out)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The study's options (shared by ``scttfs study`` and ``python -m scttfs_brian.pipeline.study``)."""
    d = StudyConfig()
    p.add_argument(
        "--out", default="analysis/results/digits_study.json", help="the JSON (default %(default)s)"
    )
    p.add_argument("--summary", help="the markdown summary (default: --out with .md)")
    p.add_argument("--work-dir", help="trained networks and finished points (default runs/<stem of --out>)")
    p.add_argument("--seeds", type=_ints, default=d.seeds, help="e.g. 0-9 or 0,3,7 (default 0-9)")
    p.add_argument("--windows", type=_ints, default=d.windows, help="the sweep of T (default 1-6)")
    p.add_argument("--codes", default=",".join(d.codes), help="sc-ttfs,ttfs (default both)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="ANN epochs (default %(default)s)")
    p.add_argument("--fine-tune-epochs", type=int, default=d.fine_tune_epochs)
    p.add_argument("--no-fine-tuning", action="store_true", help="conversions only")
    p.add_argument("--brian-images", type=int, default=d.brian_images, help="test images of the Brian2 check")
    from .cluster import add_cluster_arguments

    add_cluster_arguments(
        p,
        workers_help="run on a local Dask cluster of N worker processes, one torch thread each "
        "(default 2; 1: in this process, without Dask)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog="python -m scttfs_brian.pipeline.study",
            description="The multi-seed digits study (agreement of SC-TTFS / TTFS SNNs with the ANN).",
        )
    )


def run_from_args(args: argparse.Namespace, command: str) -> dict:
    """Run the study the parsed options describe; ``command`` is recorded in the JSON."""
    config = StudyConfig(
        seeds=args.seeds,
        codes=tuple(args.codes.split(",")),
        windows=args.windows,
        fine_tuned=(False,) if args.no_fine_tuning else (False, True),
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        brian_images=args.brian_images,
    )
    from .cluster import client_from_options

    with client_from_options(args.scheduler, None) as client:  # --workers N: run_study's own cluster
        study = run_study(
            config,
            args.out,
            progress=not args.no_progress,
            workers=2 if args.workers is None else args.workers,
            client=client,
            work_dir=args.work_dir,
            command=command,
            summary_path=args.summary,
        )
    print(
        f"{len(study['runs'])} runs -> {args.out}; summary -> {args.summary or Path(args.out).with_suffix('.md')}"
    )
    return study


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    run_from_args(args, " ".join(["python -m scttfs_brian.pipeline.study", *argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
