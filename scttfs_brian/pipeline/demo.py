"""The demo: train the digits CNN, convert it with SC-TTFS and TTFS (kernels from activation
statistics), fine-tune kernels + BN (section 3.4), simulate the test split in Brian2, check it spike
for spike against the torch engine, and report accuracy, latency, spikes and energy (eq. 25).

:class:`DemoConfig` holds every setting (``DemoConfig.create(quick=True)`` is the smoke test);
:func:`run_demo` runs it in a :class:`~.rundir.Run` and returns a :class:`DemoOutcome`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .rundir import Run, to_json
from .stages import (
    KINDS,
    evaluate_network,
    fine_tune_stage,
    fine_tuned_network,
    load_dataset,
    network_stage,
    simulate_stage,
    train_stage,
)

__all__ = ["DemoConfig", "DemoOutcome", "run_demo", "QUICK", "LOSSLESS_POINTS"]

#: "Lossless": SNN accuracy at least ANN accuracy minus this many points.
LOSSLESS_POINTS = 0.3

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
)


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of the demo. ``sweep`` and each list of ``fine_tune_sweep`` always include
    ``T`` (sorted); ``fine_tune_sweep`` may be given as one list for both codes.

    T = 3 is the demo's window; the sweep values are drawn in a figure. Fine-tuning costs ~5 s per
    T-step of window per code; TTFS is swept further (it needs longer windows).
    """

    dataset: str = "digits"
    model: str = "digits-cnn"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    lr: float = 1e-2
    optimizer: str = "adam"
    batch_size: int = 64
    weight_decay: float = 0.0
    T: int = 3
    sweep: list = field(default_factory=lambda: [1, 2, 3, 4, 6, 8, 12, 16])
    fine_tune_sweep: Any = field(default_factory=lambda: {"sc-ttfs": [2, 3, 4], "ttfs": [2, 3, 4, 6, 8]})
    calibration_images: int = 512
    fine_tune_epochs: int = 12
    fine_tune_lr: float = 1e-2
    fine_tune_kernel_lr: float = 1e-3
    fine_tune_batch_size: int = 128
    #: test images to evaluate and simulate (None: all 450)
    images: int | None = None
    #: Brian2 network copies and code generation target
    copies: int = 8
    target: str = "numpy"
    seed: int = 0
    quick: bool = False

    def __post_init__(self) -> None:
        if self.dataset != "digits":
            raise ValueError(f"the demo runs on the bundled digits (got dataset {self.dataset!r})")
        ft = self.fine_tune_sweep
        if not isinstance(ft, dict):
            ft = {kind: list(ft) for kind in KINDS}
        if set(ft) != set(KINDS):
            raise ValueError(f"fine_tune_sweep must have one list per code {list(KINDS)} (got {sorted(ft)})")
        object.__setattr__(self, "sweep", sorted(set(self.sweep) | {self.T}))
        object.__setattr__(self, "fine_tune_sweep", {k: sorted(set(ft[k]) | {self.T}) for k in KINDS})
        # fine-tuning starts from the kernels the sweep fitted: every window must be in the sweep
        outside = sorted({t for k in KINDS for t in self.fine_tune_sweep[k]} - set(self.sweep))
        if outside:
            raise ValueError(
                f"fine-tuning windows {outside} are not in the sweep {self.sweep}: fine-tuning starts from "
                f"the kernels the sweep fits; add them to --sweep (e.g. --sweep {' '.join(map(str, sorted(set(self.sweep) | set(outside))))})"
            )

    @classmethod
    def create(cls, *, quick: bool = False, **overrides: Any) -> DemoConfig:
        """The defaults, then :data:`QUICK` when ``quick``, then every override that is not None."""
        values = dict(QUICK) if quick else {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "sweep" in values and overrides.get("fine_tune_sweep") is None:
            # the default fine-tuning windows, restricted to the sweep given (given ones must be in it)
            sweep = set(values["sweep"]) | {values.get("T", cls.T)}
            default = values.get("fine_tune_sweep", cls().fine_tune_sweep)
            values["fine_tune_sweep"] = {k: [t for t in ts if t in sweep] for k, ts in default.items()}
        return cls(**values, quick=quick)

    def to_dict(self) -> dict:
        """The ``demo`` section of ``config.json``."""
        return to_json(dataclasses.asdict(self))

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
    printed at the end (``text``: tables, energy note, summary, verdict), the Brian2 check, the
    files written and the total time."""

    metrics: dict
    text: str
    agreement: Any
    verdict: str
    files: list[Path]
    seconds: float


def _smallest_lossless(results: dict, ann_acc: float) -> int | None:
    ok = [int(t) for t, r in results.items() if r["accuracy"] >= ann_acc - LOSSLESS_POINTS / 100]
    return min(ok) if ok else None


def _sweep(run: Run, config: DemoConfig, ann, ds, x_test, y_test) -> tuple[dict, dict]:
    """Kernels from activation statistics for every window of the sweep, both codes -> ``codes.json``,
    ``sweep.json``; return the accuracies and the codes."""
    from ..coding import code_from_dict
    from ..conversion import ann_activations, codes_from_activations, convert
    from ..network import SpikingNetwork

    def sweep() -> None:
        acts = ann_activations(ann, ds.x_train[: config.calibration_images])  # the kernels fit these
        code = codes_from_activations(acts, 1, "ttfs")
        base = convert(ann, ds.input_shape, code=code)
        out: dict = {k: {} for k in KINDS}
        codes: dict = {k: {} for k in KINDS}
        for kind in KINDS:
            for t in config.sweep:
                c = codes_from_activations(acts, t, kind)
                out[kind][str(t)] = evaluate_network(SpikingNetwork(base.graph.with_codes(c)), x_test, y_test)
                codes[kind][str(t)] = {name: code.to_dict() for name, code in c.items()}
                acc = 100 * out[kind][str(t)]["accuracy"]
                run.log(f"  {kind:>7} T={t}: {acc:6.2f} % (kernels from activations)")
        run.write_json("codes.json", codes)
        run.write_json("sweep.json", out)

    settings = {"sweep": config.sweep, "calibration_images": config.calibration_images,
                "images": len(x_test)}  # fmt: skip
    run.stage("sweep", ["codes.json", "sweep.json"], sweep, settings=settings, upstream=["ann.pt"])
    where = run.path("codes.json")
    init = {
        k: {t: {n: code_from_dict(d, f"{where} ({k}, T={t}, layer {n!r})") for n, d in c.items()}
            for t, c in v.items()}
        for k, v in run.read_json("codes.json").items()
    }  # fmt: skip
    return run.read_json("sweep.json"), init


def _fine_tune(run: Run, config: DemoConfig, ann, ds, init: dict) -> dict:
    """The networks at ``T`` (kernels from activations) and fine-tuned at every window of the
    fine-tuning sweep (BN folded, eq. 24) -> ``snn-*.npz``."""
    from ..conversion import convert

    T = config.T
    cfg = dataclasses.asdict(config)
    nets = {}
    for kind in KINDS:
        codes = init[kind][str(T)]
        nets[(kind, T)] = network_stage(
            run, f"{kind}-T{T}", lambda codes=codes: convert(ann, ds.input_shape, code=codes),
            settings={"codes": {n: c.to_dict() for n, c in codes.items()}}, upstream=["ann.pt", "codes.json"],
        )  # fmt: skip
        for t in config.fine_tune_sweep[kind]:
            twin = fine_tune_stage(run, ann, init[kind][str(t)], ds, cfg, f"{kind}-T{t}")
            label = f"{kind}-T{t}-ft"
            nets[(kind, t, "ft")] = network_stage(
                run, label, lambda twin=twin: fine_tuned_network(twin, ds.input_shape),
                upstream=[f"twin-{kind}-T{t}.pt"],
            )  # fmt: skip

    return nets


def _evaluate_tuned(run: Run, config: DemoConfig, nets: dict, x_test, y_test) -> dict:
    """The fine-tuned networks on the torch engine -> ``fine_tuned.json``."""

    def evaluate_tuned() -> None:
        out = {
            k: {
                str(t): evaluate_network(nets[(k, t, "ft")], x_test, y_test)
                for t in config.fine_tune_sweep[k]
            }
            for k in KINDS
        }
        run.write_json("fine_tuned.json", out)

    upstream = [f"snn-{k}-T{t}-ft.npz" for k in KINDS for t in config.fine_tune_sweep[k]]
    run.stage("evaluate fine-tuned (torch twin)", ["fine_tuned.json"], evaluate_tuned,
              settings={"images": len(x_test)}, upstream=upstream)  # fmt: skip
    tuned = run.read_json("fine_tuned.json")
    for kind in KINDS:
        for t in config.fine_tune_sweep[kind]:
            run.log(f"  {kind:>7} T={t}: {100 * tuned[kind][str(t)]['accuracy']:6.2f} % (fine-tuned)")
    return tuned


def _rows(config: DemoConfig, ann_acc: float, sweep_res: dict, tuned: dict, brian_row: dict) -> list[dict]:
    """The rows of the headline table: the ANN, both codes at ``T`` (from activations and
    fine-tuned, the SC-TTFS one from Brian2), and TTFS at the window it needs."""
    T = config.T

    def row(label, name, engine, r):
        return {"label": label, "network": name, "engine": engine, "accuracy": r["accuracy"],
                "latency_steps": r["latency_steps"], "spikes_per_image": r["spikes_per_image"]}  # fmt: skip

    rows = [
        row("ann", "ANN", "torch", {"accuracy": ann_acc, "latency_steps": None, "spikes_per_image": None}),
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
        name = f"TTFS T={t_ttfs}, fine-tuned ({why})"
        rows.append(row(f"ttfs+ft@T{t_ttfs}", name, "torch twin", tuned["ttfs"][str(t_ttfs)]))
    return rows


def _summary(config: DemoConfig, smallest: dict) -> str:
    def text(kind: str, what: str, tried: list) -> str:
        t = smallest[kind][what]
        return f"{t} ({what})" if t is not None else f"none of {tried} ({what})"

    return (
        f"Smallest window T at which the SNN is lossless (accuracy >= ANN - {LOSSLESS_POINTS} points): "
        + "; ".join(
            f"{k.upper()}: {text(k, 'kernels from activations', config.sweep)}, "
            f"{text(k, 'fine-tuned', config.fine_tune_sweep[k])}"
            for k in KINDS
        )
    )


def _brian_check(run: Run, config: DemoConfig, snn, x_test):
    """Simulate the fine-tuned SC-TTFS network in Brian2 (``sim-brian2-*.npz``) and compare it spike
    for spike with the torch engine: ``(brian result, agreement, verdict)``."""
    label = f"sc-ttfs-T{config.T}-ft"
    brian = simulate_stage(
        run, snn, x_test, label=label, backend="brian2", copies=config.copies, target=config.target
    )
    agreement = brian.compare(snn.simulate(x_test, backend="torch", record=True))
    verdict = report.verdict(agreement, len(x_test))
    run.log(verdict)
    return brian, agreement, verdict


def _lossless(snn_rows: list, sweep_res: dict, tuned: dict, ann_acc: float) -> dict:
    """Which rows are lossless, and the smallest lossless window of each code."""
    smallest = {
        kind: {
            "kernels from activations": _smallest_lossless(sweep_res[kind], ann_acc),
            "fine-tuned": _smallest_lossless(tuned[kind], ann_acc),
        }
        for kind in KINDS
    }
    return {
        "criterion": f"SNN accuracy >= ANN accuracy - {LOSSLESS_POINTS} points",
        **{r["label"]: r["accuracy"] >= ann_acc - LOSSLESS_POINTS / 100 for r in snn_rows},
        "smallest_T": smallest,
    }


def run_demo(config: DemoConfig, run: Run) -> DemoOutcome:
    """Run the demo in ``run`` (stages skipped where ``run.resume`` and their outputs exist); write
    ``metrics.json``, ``report.md`` and ``figures/``. The caller decides what a mismatch between
    Brian2 and the torch engine means (``outcome.agreement.exact``).

    Longer than 80 lines because it is the demo's table of contents (each step one call) and
    assembles ``metrics.json``, whose keys are read best in one place.
    """
    import numpy as np

    from ..training import evaluate

    t_start = time.perf_counter()
    run.store_config(config.train_config(), section="train")
    run.store_config(config.to_dict())
    ds = load_dataset(config.dataset, None)
    x_test, y_test = ds.x_test, ds.y_test
    if config.images is not None:
        x_test, y_test = x_test[: config.images], y_test[: config.images]
    T = config.T
    timings: dict[str, float] = {}

    t0 = time.perf_counter()  # 0. the ANN
    ann = train_stage(run, dataclasses.asdict(config), ds)
    ann_acc = evaluate(ann, x_test, y_test)
    timings["ann"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # 1. kernels from activation statistics
    sweep_res, init = _sweep(run, config, ann, ds, x_test, y_test)
    timings["sweep"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # 2. fine-tuning (section 3.4), 3. BN folded (eq. 24)
    nets = _fine_tune(run, config, ann, ds, init)
    timings["fine_tune"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tuned = _evaluate_tuned(run, config, nets, x_test, y_test)
    timings["evaluate"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # 4. Brian2, and the spike-for-spike check against the torch engine
    snn = nets[("sc-ttfs", T, "ft")]
    brian, agreement, verdict = _brian_check(run, config, snn, x_test)
    timings["brian2"] = time.perf_counter() - t0

    # 5. the report
    brian_acc = brian.accuracy(y_test.numpy())
    brian_row = {"accuracy": brian_acc, "latency_steps": int(brian.latency_steps),
                 "spikes_per_image": float(np.mean(brian.spikes_per_input))}  # fmt: skip
    rows = _rows(config, ann_acc, sweep_res, tuned, brian_row)
    snn_rows = rows[1:]
    energy = report.energy_estimates(
        {r["label"]: (r["spikes_per_image"], r["latency_steps"]) for r in snn_rows}
    )
    lossless = _lossless(snn_rows, sweep_res, tuned, ann_acc)
    metrics = {
        "dataset": config.dataset,
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
            "copies": config.copies,
            "target": config.target,
            "seconds": brian.timings,
            "check": agreement.to_dict(),
            "verdict": verdict,
        },
        "timings_s": timings,
    }
    table = report.markdown_table(rows, energy)
    sweep_table = report.sweep_table(sweep_res, tuned, ann_acc)
    fig1 = run.save_figure(
        "accuracy_vs_T", report.accuracy_vs_T_figure(sweep_res, tuned, ann_acc, LOSSLESS_POINTS)
    )
    title = f"Brian2: spikes for test image 0 (label {int(y_test[0])}), SC-TTFS T={T}, fine-tuned"
    fig2 = run.save_figure("raster", report.raster_figure(snn.graph, brian, 0, title))
    timings["total"] = time.perf_counter() - t_start
    run.write_json("metrics.json", metrics)
    summary = _summary(config, lossless["smallest_T"])
    note = report.energy_note(energy)
    run.write_text(
        "report.md",
        f"# SC-TTFS demo: digits CNN, {len(x_test)} test images, T = {T}\n\n{table}\n\n{note}\n\n"
        f"## Accuracy (%) vs window T (torch twin, float64)\n\n{sweep_table}\n\n{summary}\n\n{verdict}\n",
    )
    run.finished("report")
    return DemoOutcome(
        metrics=metrics,
        text=f"{table}\n\n{note}\n\n{sweep_table}\n\n{summary}\n\n{verdict}",
        agreement=agreement,
        verdict=verdict,
        files=[run.path("report.md"), run.path("metrics.json"), fig1, fig2],
        seconds=timings["total"],
    )
