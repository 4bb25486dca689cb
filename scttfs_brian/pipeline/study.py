"""The multi-seed digits study: conversion and fine-tuning over seeds, codes and windows.

For each seed the study trains the digits CNN (:class:`~scttfs_brian.models.DigitsCNN`, initial
weights and shuffling from the seed), then for each code (SC-TTFS, TTFS) and window ``T``:

* ``method="activations"``: kernels fitted to the ANN's activations
  (:func:`~scttfs_brian.training.init_codes`), no fine-tuning: the conversion as it was;
* ``method="bias-corrected"``: the same kernels and the bias correction of the expected
  quantization error (:func:`~scttfs_brian.training.bias_corrected`), no fine-tuning;
* ``method="fine-tuned"``: distillation fine-tuning with model selection on a validation split of
  the training images, each window started from its neighbour
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
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
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
    fine_tune_epochs, fine_tune_lr, fine_tune_kernel_lr, layer_weight, validation : ...
        :func:`~scttfs_brian.training.fine_tune` (distillation).
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
    layer_weight: float = 1.0
    validation: float = 0.2
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


# --------------------------------------------------------------------------------------------
# Work items (run in worker processes; each writes its results into the work directory)
# --------------------------------------------------------------------------------------------
def _key(seed: int, code: str, method: str, T: int) -> str:
    return f"seed{seed}-{code}-{method}-T{T}"


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text + "\n"))


def _dataset():
    from ..data import digits

    return digits(normalize=True)


def _ann(config: StudyConfig, seed: int, work: Path, ds=None):
    """The seed's trained ANN (trained once, then read from ``work``)."""
    import torch

    from ..conversion import load_state_dict
    from ..models import DigitsCNN
    from ..training import train_ann

    torch.manual_seed(seed)
    model = DigitsCNN(**config.model_kwargs)
    path = work / f"ann-seed{seed}.pt"
    if path.exists():
        return load_state_dict(model, path).eval()
    ds = ds or _dataset()
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


def _chain(config: StudyConfig, seed: int, code: str, work: str) -> str:
    """All grid points of one (seed, code): conversions at every T, then the fine-tuning sweep
    (resumed after its last saved window), then (for the checked code) the Brian2 check."""
    import torch

    from ..training import ann_outputs, bias_corrected, fine_tune_windows, init_codes, validation_split

    work = Path(work)
    ds = _dataset()
    ann = _ann(config, seed, work, ds)
    reference = ann_outputs(ann, ds.x_test)
    base = {
        "seed": seed,
        "code": code,
        "ann_accuracy": float((reference.argmax(1) == ds.y_test).double().mean()),
    }
    points = work / "points"

    def done(method: str, T: int) -> bool:
        return (points / f"{_key(seed, code, method, T)}.json").exists()

    def record(method: str, T: int, net, **extra) -> None:
        metrics = _measure(_network(net, ann, ds), ds, reference)
        row = {**base, "T": T, "method": method, "fine_tuned": method == "fine-tuned", **metrics, **extra}
        _write_json(points / f"{_key(seed, code, method, T)}.json", row)

    x_cal = ds.x_train[validation_split(ds, config.validation, seed)[0]][: config.calibration_images]
    if False in config.fine_tuned:
        for T in config.windows:
            if not done("activations", T):
                record("activations", T, init_codes(ann, x_cal, T, code))
    if True not in config.fine_tuned:
        for T in config.windows:
            if not done("bias-corrected", T):
                record("bias-corrected", T, bias_corrected(ann, x_cal, T, code, dtype=torch.float64))
        return _brian_check(config, seed, code, work, ann, ds)

    # the sweep is sequential: the finished windows are a prefix
    def complete(T: int) -> bool:
        ok = done("fine-tuned", T) and _state_path(work, seed, code, T).exists()
        return ok and (done("bias-corrected", T) or False not in config.fine_tuned)

    n = 0
    while n < len(config.windows) and complete(config.windows[n]):
        n += 1
    todo = list(config.windows[n:])
    previous = (
        (config.windows[n - 1], _load_spiking(ann, code, work, seed, config.windows[n - 1])) if n else None
    )
    sweep = fine_tune_windows(
        ann,
        ds,
        todo,
        code,
        previous=previous if todo else None,
        calibration_images=config.calibration_images,
        epochs=config.fine_tune_epochs,
        lr=config.fine_tune_lr,
        kernel_lr=config.fine_tune_kernel_lr,
        layer_weight=config.layer_weight,
        validation=config.validation,
        seed=seed,
        progress=False,
    )
    for T, net, info in sweep if todo else ():
        if False in config.fine_tuned:
            record("bias-corrected", T, info["bias_corrected"])
        state = net.state_dict()
        atomic_write(_state_path(work, seed, code, T), lambda tmp, s=state: torch.save(s, tmp))
        history = info["history"]
        selected = history["selected_epoch"]
        record(
            "fine-tuned",
            T,
            net,
            start=info["start"],
            selected_epoch=selected,
            validation_agreement=history["validation_agreement"][selected],
        )
    return _brian_check(config, seed, code, work, ann, ds)


def _state_path(work: Path, seed: int, code: str, T: int) -> Path:
    return work / "states" / f"seed{seed}-{code}-T{T}.pt"


def _load_spiking(ann, code: str, work: Path, seed: int, T: int):
    """The spiking ANN fine-tuned at ``T``, read back from ``work`` (float64, eval mode)."""
    import torch
    from torch import nn

    from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode
    from ..training import spiking_ann

    k = ThresholdKernel(1.0, 0.0, 1.0)  # placeholders: the state overwrites them
    codes = {
        n: (SCTTFSCode(T, k, k) if code == "sc-ttfs" else TTFSCode(T, k))
        for n, m in ann.named_modules()
        if isinstance(m, nn.ReLU)
    }
    net = spiking_ann(ann, codes).double()
    net.load_state_dict(torch.load(_state_path(work, seed, code, T), weights_only=True))
    return net.eval()


def _brian_check(config: StudyConfig, seed: int, code: str, work: Path, ann, ds) -> str:
    """Brian2 vs the torch engine, spike for spike, on the study's largest network (once per seed)."""
    import torch

    c_code, method, T = config.check
    path = work / "points" / f"brian-seed{seed}.json"
    if code != c_code or not config.brian_images or path.exists():
        return f"seed {seed} {code}"
    x = ds.x_test[: config.brian_images].double()
    if method == "fine-tuned":
        net = _load_spiking(ann, code, work, seed, T)
    else:
        from ..training import bias_corrected, validation_split

        x_cal = ds.x_train[validation_split(ds, config.validation, seed)[0]][: config.calibration_images]
        net = bias_corrected(ann, x_cal, T, code, dtype=torch.float64)
    snn = _network(net, ann, ds)
    t0 = time.perf_counter()
    brian = snn.simulate(x, backend="brian2", record=True, progress=False)
    seconds = time.perf_counter() - t0
    check = brian.compare(snn.simulate(x, backend="torch", record=True)).to_dict()
    check.update(seed=seed, code=code, method=method, T=T, images=len(x))
    _write_json(path, check)
    _write_json(work / "points" / f"brian-seed{seed}.time.json", {"seconds": seconds})
    return f"seed {seed} {code} + Brian2"


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # tiny models: one thread each; results depend on the count


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
    work_dir: str | os.PathLike | None = None,
    command: str | None = None,
    summary_path: str | os.PathLike | None = None,
    on_point: Callable[[str], None] | None = None,
) -> dict:
    """Run (or resume) the study and write ``out_path`` (JSON) and its markdown summary.

    Parameters
    ----------
    config : StudyConfig
    out_path : path
        The JSON; if it exists, its configuration must match (seeds may be added) and its runs are
        kept.
    progress : bool
        A progress bar over the finished (seed, code) sweeps.
    workers : int
        Processes, each with one torch thread (1: in this process).
    work_dir : path, optional
        Trained networks and finished points (default ``runs/<stem of out_path>``).
    command : str, optional
        The command line recorded in the results (default: this process's).
    summary_path : path, optional
        The markdown summary (default ``out_path`` with ``.md``).
    on_point : callable, optional
        Called with a description after each finished work item (tests interrupt here).

    Returns
    -------
    dict
        The study as written.
    """
    from ..training import LOSSLESS_AGREEMENT
    from .study_summary import write_summary

    out = Path(out_path)
    work = Path(work_dir) if work_dir is not None else Path("runs") / out.stem
    (work / "points").mkdir(parents=True, exist_ok=True)
    old = _load(out, config)
    t0 = time.perf_counter()
    meta = {
        "machine": machine(),
        "command": command or " ".join(["python -m scttfs_brian.pipeline.study", *sys.argv[1:]]),
        "lossless_agreement": LOSSLESS_AGREEMENT,
        "test_images": len(_dataset().x_test),
    }
    jobs = [(seed, code) for seed in config.seeds for code in config.codes]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), disable=not progress, desc="study (seed, code) sweeps", unit="sweep")
    if workers <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for seed, code in jobs:
                what = _chain(config, seed, code, str(work))
                _merge(out, config, work, old, meta)
                bar.update(1)
                if on_point is not None:
                    on_point(what)
        finally:
            torch.set_num_threads(threads)
    else:
        _parallel(config, jobs, work, workers, lambda: _merge(out, config, work, old, meta), bar, on_point)
    bar.close()
    meta["invocation"] = {"wall_s": time.perf_counter() - t0, "workers": workers}
    _merge(out, config, work, old, meta)
    study = json.loads(out.read_text())
    write_summary(study, Path(summary_path) if summary_path else out.with_suffix(".md"))
    return study


def _parallel(config, jobs, work: Path, workers: int, merge, bar, on_point) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
        # the ANNs first (one per seed), so that the two codes of a seed do not both train it
        anns = [pool.submit(_train_only, config, seed, str(work)) for seed in config.seeds]
        for f in anns:
            f.result()
        pending = {pool.submit(_chain, config, seed, code, str(work)) for seed, code in jobs}
        while pending:
            finished, pending = wait(pending, timeout=5.0, return_when=FIRST_COMPLETED)
            merge()
            for f in finished:
                what = f.result()
                bar.update(1)
                if on_point is not None:
                    on_point(what)


def _train_only(config: StudyConfig, seed: int, work: str) -> None:
    _ann(config, seed, Path(work))


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
    p.add_argument("--workers", type=int, default=2, help="processes, one torch thread each (default 2)")
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
    study = run_study(
        config,
        args.out,
        progress=not args.no_progress,
        workers=args.workers,
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
