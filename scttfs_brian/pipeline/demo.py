"""The demo: one seed of the multi-seed study's pipeline, simulated in Brian2.

Train the digits CNN; convert it with SC-TTFS and TTFS over a sweep of windows ``T``, with kernels
from activation statistics and with the bias correction of the quantization error
(:func:`~scttfs_brian.training.bias_corrected`); fine-tune kernels, BN and weights as the study does
(:func:`~scttfs_brian.training.fine_tune_windows`: distillation to the ANN, model selection on a
validation split of the training images, each window started from its neighbour, with the
fine-tuning settings of :class:`~.study.StudyConfig`); simulate the fine-tuned SC-TTFS network at
``T`` in Brian2 and check it spike for spike against the torch engine. The report gives, per
network, the **agreement** with the ANN (the conversion metric: the share of test images on which
the SNN predicts what the ANN predicts; lossless = agreement >=
:data:`~scttfs_brian.training.LOSSLESS_AGREEMENT`), the mean ``|output - ANN output|``, accuracy,
latency, spikes and energy (eq. 25), and reads its single-seed agreement at ``T`` against the
study's interval (``analysis/results/digits_study.json``, :func:`compare_with_study`).

:class:`DemoConfig` holds every setting (``DemoConfig.create(quick=True)`` is the smoke test);
:func:`run_demo` runs it in a :class:`~.rundir.Run` and returns a :class:`DemoOutcome`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .rundir import Run, to_json
from .stages import (
    KINDS,
    agreement_with,
    evaluate_network,
    fine_tune_window_stage,
    fine_tuned_network,
    load_dataset,
    network_label,
    network_stage,
    simulate_stage,
    train_stage,
)
from .study import StudyConfig

__all__ = ["DemoConfig", "DemoOutcome", "run_demo", "QUICK", "METHODS", "STUDY_RESULTS", "compare_with_study"]

#: The study's defaults: the demo trains and fine-tunes with them (one seed of the study).
_STUDY = StudyConfig()

#: The ways a network is obtained (the study's names), and how the report calls them.
METHODS = {
    "activations": "kernels from activations",
    "bias-corrected": "bias-corrected",
    "fine-tuned": "fine-tuned",
}
#: The suffix of a method in the labels of ``metrics.json`` (``sc-ttfs+ft``).
_SUFFIX = {"activations": "", "bias-corrected": "+bc", "fine-tuned": "+ft"}

#: Where the study's results lie, relative to the repository (the demo runs from its root).
STUDY_RESULTS = "analysis/results/digits_study.json"

#: The keys of the ``train`` section a demo writes into ``config.json`` (``scttfs convert`` and
#: ``scttfs simulate --run-dir`` work on a demo's run directory too).
TRAIN_KEYS = (
    "dataset",
    "model",
    "model_kwargs",
    "epochs",
    "lr",
    "optimizer",
    "batch_size",
    "weight_decay",
    "seed",
    "holdout",
)

#: The settings the demo shares with the study (:class:`~.study.StudyConfig` fields); when one
#: differs, the comparison with the study says so.
_STUDY_KEYS = ("epochs", "lr", "model_kwargs", "ann_holdout", "calibration_images", "fine_tune_epochs",
               "fine_tune_lr", "fine_tune_kernel_lr", "fine_tune_weight_lr", "layer_weight",
               "validation")  # fmt: skip


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of the demo. ``sweep`` and each list of ``fine_tune_sweep`` always include
    ``T`` (sorted); ``fine_tune_sweep`` may be given as one list for both codes.

    The ANN's training and the fine-tuning take :class:`~.study.StudyConfig`'s defaults (``epochs``,
    ``lr``, ``calibration_images``, ``fine_tune_*``, ``layer_weight``, ``validation``): the demo is
    one seed of the study. T = 3 is the demo's window; the sweep of conversions without
    fine-tuning (cheap) is drawn in a figure. Fine-tuning is sequential in ``T`` (each window
    starts from the one before) and costs ~20 s per window and code on one core: by default both
    codes are fine-tuned at the study's windows up to ``T`` (1, 2, 3), so that the network at ``T``
    is the one the study has for the same seed. ``study_results``: the study's JSON (default
    :data:`STUDY_RESULTS` under the working directory or the repository).
    """

    dataset: str = "digits"
    model: str = "digits-cnn"
    model_kwargs: dict = field(default_factory=lambda: dict(_STUDY.model_kwargs))
    epochs: int = _STUDY.epochs
    lr: float = _STUDY.lr
    optimizer: str = "adam"
    batch_size: int = 64
    weight_decay: float = 0.0
    T: int = 3
    sweep: list = field(default_factory=lambda: [1, 2, 3, 4, 6, 8, 12, 16])
    #: None: the study's windows up to ``T`` that are in the sweep
    fine_tune_sweep: Any = None
    calibration_images: int = _STUDY.calibration_images
    fine_tune_epochs: int = _STUDY.fine_tune_epochs
    fine_tune_lr: float = _STUDY.fine_tune_lr
    fine_tune_kernel_lr: float = _STUDY.fine_tune_kernel_lr
    fine_tune_weight_lr: float | None = _STUDY.fine_tune_weight_lr
    layer_weight: float = _STUDY.layer_weight
    validation: float = _STUDY.validation
    #: train the ANN without the validation split (as the study does)
    ann_holdout: bool = _STUDY.ann_holdout
    #: test images to evaluate and simulate (None: all 450)
    images: int | None = None
    #: Brian2 network copies and code generation target
    copies: int = 8
    target: str = "numpy"
    seed: int = 0
    quick: bool = False
    study_results: str | None = None

    def __post_init__(self) -> None:
        if self.dataset != "digits":
            raise ValueError(f"the demo runs on the bundled digits (got dataset {self.dataset!r})")
        sweep = sorted(set(self.sweep) | {self.T})
        ft = self.fine_tune_sweep
        if ft is None:
            ft = [t for t in _STUDY.windows if t <= self.T and t in sweep]
        if not isinstance(ft, dict):
            ft = {kind: list(ft) for kind in KINDS}
        if set(ft) != set(KINDS):
            raise ValueError(f"fine_tune_sweep must have one list per code {list(KINDS)} (got {sorted(ft)})")
        object.__setattr__(self, "sweep", sweep)
        object.__setattr__(self, "fine_tune_sweep", {k: sorted(set(ft[k]) | {self.T}) for k in KINDS})
        # every fine-tuned network is set beside the conversions without fine-tuning at its window
        outside = sorted({t for k in KINDS for t in self.fine_tune_sweep[k]} - set(self.sweep))
        if outside:
            raise ValueError(
                f"fine-tuning windows {outside} are not in the sweep {self.sweep}: each fine-tuned network is "
                "compared with the conversions at its window; add them to --sweep (e.g. --sweep "
                f"{' '.join(map(str, sorted(set(self.sweep) | set(outside))))})"
            )

    @classmethod
    def create(cls, *, quick: bool = False, **overrides: Any) -> DemoConfig:
        """The defaults, then :data:`QUICK` when ``quick``, then every override that is not None."""
        values = dict(QUICK) if quick else {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values, quick=quick)

    def to_dict(self) -> dict:
        """The ``demo`` section of ``config.json``."""
        return to_json(dataclasses.asdict(self))

    @property
    def holdout(self) -> float | None:
        """The fraction of training images the ANN does not see (the validation split), or None."""
        return self.validation if self.ann_holdout else None

    def train_config(self) -> dict:
        """The ``train`` section of ``config.json``."""
        return {"data_root": None, **{k: to_json(getattr(self, k)) for k in TRAIN_KEYS}}


#: ``quick=True``: a small CNN, few epochs and images (a smoke test of the whole pipeline).
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


@dataclass
class DemoOutcome:
    """What :func:`run_demo` returns: the numbers (``metrics``, as in ``metrics.json``), the text
    printed at the end (``text``: tables, notes, summary, the comparison with the study, verdict),
    the Brian2 check, the files written and the total time."""

    metrics: dict
    text: str
    agreement: Any
    verdict: str
    files: list[Path]
    seconds: float


def _lossless(r: dict) -> bool:
    from ..training import LOSSLESS_AGREEMENT

    return r["agreement"] >= LOSSLESS_AGREEMENT


def _smallest_lossless(results: dict) -> int | None:
    ok = [int(t) for t, r in results.items() if _lossless(r)]
    return min(ok) if ok else None


def _sweep(run: Run, config: DemoConfig, ann, ds, x_test, y_test, reference) -> tuple[dict, dict]:
    """Both codes at every window of the sweep, with kernels from activation statistics and
    bias-corrected, on the study's calibration images -> ``codes.json`` (the kernels from
    activations), ``sweep.json`` (``{method: {kind: {T: metrics}}}``); return both."""
    import torch

    from ..coding import code_from_dict
    from ..conversion import ann_activations, codes_from_activations, convert
    from ..network import SpikingNetwork
    from ..training import bias_corrected, calibration_set

    x_cal = calibration_set(ds, config.calibration_images, config.validation, config.seed)

    def sweep() -> None:
        acts = ann_activations(ann, x_cal)  # the kernels fit these
        base = convert(ann, ds.input_shape, code=codes_from_activations(acts, 1, "ttfs"))
        out: dict = {m: {k: {} for k in KINDS} for m in ("activations", "bias-corrected")}
        codes: dict = {k: {} for k in KINDS}
        for kind in KINDS:
            for t in config.sweep:
                c = codes_from_activations(acts, t, kind)
                codes[kind][str(t)] = {name: code.to_dict() for name, code in c.items()}
                nets = {
                    "activations": SpikingNetwork(base.graph.with_codes(c)),
                    "bias-corrected": fine_tuned_network(
                        bias_corrected(ann, x_cal, t, kind, max_images=len(x_cal), dtype=torch.float64),
                        ds.input_shape,
                    ),
                }
                for method, snn in nets.items():
                    r = out[method][kind][str(t)] = evaluate_network(snn, x_test, y_test, reference)
                    run.log(f"  {kind:>7} T={t}: agreement {100 * r['agreement']:6.2f} %, accuracy "
                            f"{100 * r['accuracy']:6.2f} % ({METHODS[method]})")  # fmt: skip
        run.write_json("codes.json", codes)
        run.write_json("sweep.json", out)

    settings = {"sweep": config.sweep, "calibration_images": config.calibration_images,
                "validation": config.validation, "seed": config.seed, "images": len(x_test)}  # fmt: skip
    run.stage("sweep", ["codes.json", "sweep.json"], sweep, settings=settings, upstream=["ann.pt"])
    where = run.path("codes.json")
    codes = {
        k: {n: code_from_dict(d, f"{where} ({k}, T={config.T}, layer {n!r})")
            for n, d in v[str(config.T)].items()}
        for k, v in run.read_json("codes.json").items()
    }  # fmt: skip
    return run.read_json("sweep.json"), codes


def _fine_tune(run: Run, config: DemoConfig, ann, ds, codes: dict) -> dict:
    """The networks at ``T`` with kernels from activations, and fine-tuned as the study does at
    every window of the fine-tuning sweep, each window starting from the one before (BN folded,
    eq. 24) -> ``snn-*.npz``; return them, keyed ``(kind, T)`` and ``(kind, t, "ft")``."""
    from ..conversion import convert

    T = config.T
    cfg = dataclasses.asdict(config)
    nets = {}
    for kind in KINDS:
        c = codes[kind]
        nets[(kind, T)] = network_stage(
            run, network_label(kind, T, False), lambda c=c: convert(ann, ds.input_shape, code=c),
            settings={"codes": {n: code.to_dict() for n, code in c.items()}}, upstream=["ann.pt", "codes.json"],
        )  # fmt: skip
        previous = None
        for t in config.fine_tune_sweep[kind]:
            twin = fine_tune_window_stage(run, ann, ds, kind, t, cfg, previous)
            label = network_label(kind, t, True)
            nets[(kind, t, "ft")] = network_stage(
                run, label, lambda twin=twin: fine_tuned_network(twin, ds.input_shape),
                upstream=[f"twin-{network_label(kind, t, False)}.pt"],
            )  # fmt: skip
            previous = (t, twin)
    return nets


def _evaluate_tuned(run: Run, config: DemoConfig, nets: dict, x_test, y_test, reference) -> dict:
    """The fine-tuned networks on the torch engine, with where each window's fine-tuning started
    and the epoch it selected -> ``fine_tuned.json``."""

    def history(kind: str, t: int) -> dict:
        h = run.read_json(f"fine_tune_history-{network_label(kind, t, False)}.json")
        e = h["selected_epoch"]
        return {
            "start": h["start"],
            "selected_epoch": e,
            "validation_agreement": h["validation_agreement"][e],
        }

    def evaluate_tuned() -> None:
        out = {
            k: {
                str(t): {**evaluate_network(nets[(k, t, "ft")], x_test, y_test, reference), **history(k, t)}
                for t in config.fine_tune_sweep[k]
            }
            for k in KINDS
        }
        run.write_json("fine_tuned.json", out)

    upstream = [f"snn-{network_label(k, t, True)}.npz" for k in KINDS for t in config.fine_tune_sweep[k]]
    run.stage("evaluate fine-tuned (torch twin)", ["fine_tuned.json"], evaluate_tuned,
              settings={"images": len(x_test)}, upstream=upstream)  # fmt: skip
    tuned = run.read_json("fine_tuned.json")
    for kind in KINDS:
        for t in config.fine_tune_sweep[kind]:
            r = tuned[kind][str(t)]
            run.log(f"  {kind:>7} T={t}: agreement {100 * r['agreement']:6.2f} %, accuracy "
                    f"{100 * r['accuracy']:6.2f} % (fine-tuned, from {r['start']})")  # fmt: skip
    return tuned


def _rows(config: DemoConfig, ann_acc: float, results: dict, brian_row: dict) -> list[dict]:
    """The rows of the headline table: the ANN, both codes at ``T`` by every method (the
    fine-tuned SC-TTFS one from Brian2), and TTFS at the window it needs."""
    T = config.T

    def row(kind, method, r, engine="torch twin", t=T, why=""):
        label = kind + _SUFFIX[method] + ("" if t == T else f"@T{t}")
        name = f"{kind.upper()} T={t}, {METHODS[method]}{why}"
        return {"label": label, "network": name, "engine": engine, "accuracy": r["accuracy"],
                "agreement": r["agreement"], "mean_abs_output_diff": r["mean_abs_output_diff"],
                "latency_steps": r["latency_steps"], "spikes_per_image": r["spikes_per_image"]}  # fmt: skip

    ann = {"label": "ann", "network": "ANN", "engine": "torch", "accuracy": ann_acc, "agreement": None,
           "mean_abs_output_diff": None, "latency_steps": None, "spikes_per_image": None}  # fmt: skip
    rows = [ann]
    for kind in KINDS:
        for method in METHODS:
            if kind == "sc-ttfs" and method == "fine-tuned":
                rows.append(row(kind, method, brian_row, "Brian2 (= torch twin)"))
            else:
                rows.append(row(kind, method, results[method][kind][str(T)]))
    # TTFS at the window it needs: the smallest lossless one of any method (fine-tuned first),
    # else the network closest to the ANN
    candidates = [
        (int(t), m, r) for m in ("fine-tuned", "bias-corrected") for t, r in results[m]["ttfs"].items()
    ]
    lossless = [c for c in candidates if _lossless(c[2])]
    if lossless:
        t, method, r = min(lossless, key=lambda c: c[0])
        why = ", smallest lossless T"
    else:
        t, method, r = max(candidates, key=lambda c: (c[2]["agreement"], -c[0]))
        why = ", highest agreement, not lossless"
    if t != T:
        rows.append(row("ttfs", method, r, t=t, why=why))
    return rows


def _summary(config: DemoConfig, smallest: dict) -> str:
    from ..training import LOSSLESS_AGREEMENT

    def text(kind: str, method: str) -> str:
        t = smallest[kind][method]
        tried = config.fine_tune_sweep[kind] if method == "fine-tuned" else config.sweep
        return f"{t} ({METHODS[method]})" if t is not None else f"none of {tried} ({METHODS[method]})"

    return (
        f"Smallest window T at which the SNN is lossless (agreement with the ANN >= "
        f"{100 * LOSSLESS_AGREEMENT:.1f} % of the test images): "
        + "; ".join(f"{k.upper()}: " + ", ".join(text(k, m) for m in METHODS) for k in KINDS)
    )


def _brian_check(run: Run, config: DemoConfig, snn, x_test):
    """Simulate the fine-tuned SC-TTFS network in Brian2 (``sim-brian2-*.npz``) and compare it spike
    for spike with the torch engine: ``(brian result, agreement, verdict)``."""
    label = network_label("sc-ttfs", config.T, True)
    brian = simulate_stage(
        run, snn, x_test, label=label, backend="brian2", copies=config.copies, target=config.target
    )
    agreement = brian.compare(snn.simulate(x_test, backend="torch", record=True))
    verdict = report.verdict(agreement, len(x_test))
    run.log(verdict)
    return brian, agreement, verdict


# --------------------------------------------------------------------------------------------
# The comparison with the multi-seed study
# --------------------------------------------------------------------------------------------
def study_results_path(config: DemoConfig) -> Path:
    """``config.study_results``, else :data:`STUDY_RESULTS` under the working directory or, when
    it is not there, under the repository this package lies in."""
    if config.study_results:
        return Path(config.study_results)
    candidates = [Path.cwd() / STUDY_RESULTS, Path(__file__).resolve().parents[2] / STUDY_RESULTS]
    return next((p for p in candidates if p.is_file()), Path(STUDY_RESULTS))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if rel.startswith("..") else rel


def compare_with_study(
    agreements: dict, *, T: int, seed: int, path: str | os.PathLike, settings: dict | None = None
) -> dict:
    """This run's agreement at ``T`` next to the study's interval for the same (code, method, T).

    Parameters
    ----------
    agreements : dict
        ``{(code, method): agreement}`` of this run (methods as in the study: ``"bias-corrected"``,
        ``"fine-tuned"``).
    T, seed : int
        The window and the seed of this run.
    path : path
        The study's JSON (:mod:`.study`); a missing or unreadable file is said in one line.
    settings : dict, optional
        This run's values of the study's settings (:class:`~.study.StudyConfig` fields, and
        ``test_images``): those that differ from the study's are named.

    Returns
    -------
    dict
        ``path``, ``found``, ``lines`` (the text), ``cells`` (per (code, method): this run's
        agreement, the study's mean, 95 % interval, range, seeds, its value for ``seed`` if any,
        ``inside``) and ``differing_settings``.
    """
    from .study_summary import summarize_cell

    path = Path(path)
    out: dict = {"path": _shown(path), "found": False, "cells": [], "differing_settings": {}}
    try:
        study = json.loads(path.read_text())
        level = study["lossless_agreement"]
    except FileNotFoundError:
        out["lines"] = [
            f"Study comparison: no study file at {_shown(path)} (`make study` writes it; "
            "--study-results names another)"
        ]
        return out
    except (OSError, ValueError, KeyError, TypeError) as err:
        out["lines"] = [f"Study comparison: {_shown(path)} cannot be read as a study ({err!r:.120}); skipped"]
        return out
    out["found"] = True
    seeds = study.get("config", {}).get("seeds", [])
    cpu = study.get("machine", {}).get("cpu", "an unknown machine")
    lines = [
        f"Against the multi-seed study ({_shown(path)}: {len(seeds)} seeds, {cpu}; lossless = agreement >= "
        f"{100 * level:.1f} %): this run's agreement with the ANN, and the study's mean over its seeds [95 % "
        "interval of that mean, bootstrap over seeds and images] (range over seeds). One seed may fall outside "
        "the interval of the mean by chance; outside the range of the seeds is unusual."
    ]
    for (code, method), a in agreements.items():
        row = summarize_cell(study, code, method, T)
        what = (
            f"- {code.upper()} T={T} {METHODS[method]}: agreement {100 * a:.2f} % in this run (seed {seed})"
        )
        if row is None:
            lines.append(f"{what}; the study has no {code} {method} run at T={T}")
            continue
        m = row["agreement"]
        lo, hi = m["ci95"]
        inside = lo <= a <= hi
        same = row["per_seed"].get(seed)
        cell = {"code": code, "method": method, "T": T, "agreement": a, "study_mean": m["mean"],
                "study_ci95": [lo, hi], "study_min": m["min"], "study_max": m["max"], "study_seeds": row["seeds"],
                "study_same_seed": same, "inside": inside}  # fmt: skip
        out["cells"].append(cell)
        seed_text = "" if same is None else f"; its seed {seed}: {100 * same:.2f} %"
        verdict = (
            "inside the study's interval"
            if inside
            else f"OUTSIDE the study's interval ({'below' if a < lo else 'above'})"
        )
        lines.append(
            f"{what}; the study {100 * m['mean']:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}] over {len(row['seeds'])} "
            f"seeds (range {100 * m['min']:.2f}-{100 * m['max']:.2f}{seed_text}): {verdict}"
        )
    theirs = {**study.get("config", {}), "test_images": study.get("test_images")}
    differ = {
        k: (v, theirs[k]) for k, v in (settings or {}).items() if k in theirs and to_json(v) != theirs[k]
    }
    out["differing_settings"] = {k: {"this run": v, "study": s} for k, (v, s) in differ.items()}
    if differ:
        lines.append(
            "  This run's settings differ from the study's ("
            + "; ".join(f"{k}: {v} here, {s} there" for k, (v, s) in differ.items())
            + "): the comparison is indicative only."
        )
    out["lines"] = lines
    return out


def run_demo(config: DemoConfig, run: Run) -> DemoOutcome:
    """Run the demo in ``run`` (stages skipped where ``run.resume`` and their outputs exist); write
    ``metrics.json``, ``report.md`` and ``figures/``. The caller decides what a mismatch between
    Brian2 and the torch engine means (``outcome.agreement.exact``).

    Longer than 80 lines because it is the demo's table of contents (each step one call) and
    assembles ``metrics.json``, whose keys are read best in one place.
    """
    import numpy as np

    from ..training import LOSSLESS_AGREEMENT, ann_outputs, evaluate

    t_start = time.perf_counter()
    run.store_config(config.train_config(), section="train")
    run.store_config(config.to_dict())
    ds = load_dataset(config.dataset, None)
    x_test, y_test = ds.x_test, ds.y_test
    if config.images is not None:
        x_test, y_test = x_test[: config.images], y_test[: config.images]
    T = config.T
    timings: dict[str, float] = {}

    t0 = time.perf_counter()  # 0. the ANN, and its outputs: the reference of every SNN
    ann = train_stage(run, {**dataclasses.asdict(config), "holdout": config.holdout}, ds)
    ann_acc = evaluate(ann, x_test, y_test)
    reference = ann_outputs(ann, x_test)
    timings["ann"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # 1. kernels from activation statistics, and bias-corrected
    results, codes = _sweep(run, config, ann, ds, x_test, y_test, reference)
    timings["sweep"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # 2. fine-tuning (section 3.4, as the study does), 3. BN folded (eq. 24)
    nets = _fine_tune(run, config, ann, ds, codes)
    timings["fine_tune"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    results["fine-tuned"] = _evaluate_tuned(run, config, nets, x_test, y_test, reference)
    timings["evaluate"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # 4. Brian2, and the spike-for-spike check against the torch engine
    snn = nets[("sc-ttfs", T, "ft")]
    brian, agreement, verdict = _brian_check(run, config, snn, x_test)
    timings["brian2"] = time.perf_counter() - t0

    # 5. the report
    brian_acc = brian.accuracy(y_test.numpy())
    brian_row = {"accuracy": brian_acc, "latency_steps": int(brian.latency_steps),
                 "spikes_per_image": float(np.mean(brian.spikes_per_input)),
                 **agreement_with(brian.outputs, reference)}  # fmt: skip
    rows = _rows(config, ann_acc, results, brian_row)
    snn_rows = rows[1:]
    energy = report.energy_estimates(
        {r["label"]: (r["spikes_per_image"], r["latency_steps"]) for r in snn_rows}
    )
    smallest = {k: {m: _smallest_lossless(results[m][k]) for m in METHODS} for k in KINDS}
    lossless = {
        "criterion": f"agreement with the ANN >= {100 * LOSSLESS_AGREEMENT:.1f} % of the test images "
        "(scttfs_brian.training.LOSSLESS_AGREEMENT)",
        "level": LOSSLESS_AGREEMENT,
        **{r["label"]: _lossless(r) for r in snn_rows},
        "smallest_T": {k: {METHODS[m]: t for m, t in v.items()} for k, v in smallest.items()},
    }
    measured = {(k, m): next(r["agreement"] for r in snn_rows if r["label"] == k + _SUFFIX[m])
                for k in KINDS for m in ("bias-corrected", "fine-tuned")}  # fmt: skip
    settings = {k: getattr(config, k) for k in _STUDY_KEYS}
    study = compare_with_study(measured, T=T, seed=config.seed, path=study_results_path(config),
                               settings={**settings, "test_images": len(x_test)})  # fmt: skip
    metrics = {
        "dataset": config.dataset,
        "test_images": len(x_test),
        "T": T,
        "seed": config.seed,
        "ann_accuracy": ann_acc,
        "agreement": {r["label"]: r["agreement"] for r in snn_rows},
        "mean_abs_output_diff": {r["label"]: r["mean_abs_output_diff"] for r in snn_rows},
        "snn_accuracy": {r["label"]: r["accuracy"] for r in snn_rows},
        "latency_steps": {r["label"]: r["latency_steps"] for r in snn_rows},
        "spikes_per_image": {r["label"]: r["spikes_per_image"] for r in snn_rows},
        "energy": energy,
        "lossless": lossless,
        "sweep": results,
        "fine_tuning": {
            "procedure": "distillation to the ANN, model selection on a validation split of the training "
            "images, each window started from the better of the bias-corrected conversion and the network "
            "of the previous window (scttfs_brian.training.fine_tune_windows; the study's settings)",
            "windows": config.fine_tune_sweep,
            **{
                k: getattr(config, k)
                for k in (
                    "fine_tune_epochs",
                    "fine_tune_lr",
                    "fine_tune_kernel_lr",
                    "layer_weight",
                    "validation",
                    "calibration_images",
                )
            },
        },  # fmt: skip
        "study": {k: v for k, v in study.items()},
        "brian2": {
            "accuracy": brian_acc,
            "agreement": brian_row["agreement"],
            "mean_abs_output_diff": brian_row["mean_abs_output_diff"],
            "copies": config.copies,
            "target": config.target,
            "seconds": brian.timings,
            "check": agreement.to_dict(),
            "verdict": verdict,
        },
        "timings_s": timings,
    }
    table = report.markdown_table(rows, energy)
    notes = f"{report.agreement_note(len(x_test))}\n\n{report.energy_note(energy)}"
    sweep_table = report.sweep_table(results, ann_acc)
    fig1 = run.save_figure("accuracy_vs_T", report.agreement_vs_T_figure(results, ann_acc))
    title = f"Brian2: spikes for test image 0 (label {int(y_test[0])}), SC-TTFS T={T}, fine-tuned"
    fig2 = run.save_figure("raster", report.raster_figure(snn.graph, brian, 0, title))
    timings["total"] = time.perf_counter() - t_start
    run.write_json("metrics.json", metrics)
    summary = _summary(config, smallest)
    study_text = "\n".join(study["lines"])
    run.write_text(
        "report.md",
        f"# SC-TTFS demo: digits CNN, seed {config.seed}, {len(x_test)} test images, T = {T}\n\n{table}\n\n"
        f"{notes}\n\n## Agreement with the ANN (%) vs window T (accuracy in parentheses; torch twin, "
        f"float64)\n\n{sweep_table}\n\n{summary}\n\n## Against the multi-seed study\n\n{study_text}\n\n"
        f"{verdict}\n",
    )
    run.finished("report")
    return DemoOutcome(
        metrics=metrics,
        text=f"{table}\n\n{notes}\n\n{sweep_table}\n\n{summary}\n\n{study_text}\n\n{verdict}",
        agreement=agreement,
        verdict=verdict,
        files=[run.path("report.md"), run.path("metrics.json"), fig1, fig2],
        seconds=timings["total"],
    )
