"""What ``scttfs train``, ``convert`` and ``simulate`` do, as functions of a run directory and a
configuration dict (the section each stores in ``config.json``); the command line only parses
options and prints."""

from __future__ import annotations

from typing import Any

from . import report
from .errors import UsageError
from .rundir import Run
from .stages import (
    codes_stage,
    evaluate_network,
    fine_tune_stage,
    fine_tuned_network,
    load_network,
    network_label,
    network_stage,
    simulate_stage,
    train_stage,
)

__all__ = ["train", "convert_networks", "simulate_network"]


def train(run: Run, cfg: dict, ds) -> float:
    """Train the ANN of ``cfg`` (the ``train`` section) -> ``ann.pt``; record and return its test
    accuracy (``metrics.json``)."""
    from ..training import evaluate

    run.store_config(cfg)
    model = train_stage(run, cfg, ds)
    acc = evaluate(model, ds.x_test, ds.y_test)
    run.update_json("metrics.json", {"ann_accuracy": acc})
    return acc


def convert_networks(run: Run, ann, ds, cfg: dict, kinds: tuple[str, ...]) -> dict[str, dict]:
    """Kernels from activations (+ fine-tuning when ``cfg["fine_tune_epochs"] > 0``) for every code
    of ``kinds`` at window ``cfg["T"]`` -> ``snn-<kind>-T<T>[-ft].npz``; each network's accuracy,
    spikes and latency on the torch engine (added to ``metrics.json``), by label."""
    from ..conversion import convert

    run.store_config(cfg)
    T = cfg["T"]
    results = {}
    for kind in kinds:
        label = network_label(kind, T, False)
        codes = codes_stage(run, ann, ds, T, kind, cfg["calibration_images"], label)
        snn = network_stage(
            run, label, lambda codes=codes: convert(ann, ds.input_shape, code=codes),
            settings={"codes": {n: c.to_dict() for n, c in codes.items()}},
            upstream=["ann.pt", f"codes-{label}.json"],
        )  # fmt: skip
        results[label] = evaluate_network(snn, ds.x_test, ds.y_test)
        if cfg["fine_tune_epochs"] > 0:
            twin = fine_tune_stage(run, ann, codes, ds, cfg, label)
            ft = network_label(kind, T, True)
            snn = network_stage(run, ft, lambda twin=twin: fine_tuned_network(twin, ds.input_shape),
                                upstream=[f"twin-{label}.pt"])  # fmt: skip
            results[ft] = evaluate_network(snn, ds.x_test, ds.y_test)
    metrics = run.read_json("metrics.json") if run.path("metrics.json").exists() else {}
    metrics.setdefault("snn", {}).update(results)
    run.write_json("metrics.json", metrics)
    return results


def simulate_network(
    run: Run, ds, cfg: dict, *, kind: str, T: int, fine_tuned: bool, distributed: Any = None
) -> tuple[dict, Any]:
    """Simulate the converted network ``<kind>-T<T>[-ft]`` on ``cfg["images"]`` test images (all
    when None) with ``cfg["backend"]`` -> ``sim-*.npz``, ``metrics.json`` and a raster figure.

    Returns the metrics of the run (``"check"``: the agreement with the torch engine when
    ``cfg["check"]`` and the backend is Brian2) and the :class:`~scttfs_brian.results.Agreement`
    (``None`` without a check)."""
    import numpy as np

    label = network_label(kind, T, fine_tuned)
    path = run.path(f"snn-{label}.npz")
    convert = f"`scttfs convert --run-dir {run.dir} --kind {kind} --T {T}" + (
        " --fine-tune-epochs N" if fine_tuned else "") + "`"  # fmt: skip
    if not path.exists():
        raise UsageError(f"{path} does not exist; run {convert} first")
    snn = load_network(run, path.name)  # a damaged file is named first
    run.require_current(path.name, f"run {convert} again")
    run.store_config({"network": label, **cfg})
    x, y = ds.x_test, ds.y_test
    if cfg["images"] is not None:
        x, y = x[: cfg["images"]], y[: cfg["images"]]
    backend = cfg["backend"]
    res = simulate_stage(
        run, snn, x, label=label, backend=backend, copies=cfg["copies"], target=cfg["target"],
        distributed=distributed,
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
    agreement = None
    if cfg["check"] and backend == "brian2":
        agreement = res.compare(snn.simulate(x, backend="torch", record=True))
        out["check"] = agreement.to_dict()
    metrics = run.read_json("metrics.json") if run.path("metrics.json").exists() else {}
    metrics.setdefault("simulations", {})[f"{label}-{backend}"] = out
    run.write_json("metrics.json", metrics)
    title = f"{backend}: spikes for test image 0, {label}"
    out["figure"] = run.save_figure(
        f"raster-{label}-{backend}", report.raster_figure(snn.graph, res, 0, title)
    )
    return out, agreement
