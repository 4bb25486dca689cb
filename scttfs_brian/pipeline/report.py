"""What an experiment reports: the markdown tables, the energy estimate (eq. 25) and its note,
the verdict of the Brian2 check, and the figures (returned as matplotlib figures; the caller saves
them with :meth:`~.rundir.Run.save_figure`)."""

from __future__ import annotations

from .stages import KINDS

__all__ = [
    "energy_estimates",
    "energy_note",
    "markdown_table",
    "sweep_table",
    "verdict",
    "accuracy_vs_T_figure",
    "raster_figure",
]


def energy_estimates(rows: dict) -> dict:
    """Eq. 25 for every row ``{label: (spikes, latency)}``: raw and max-normalized estimates
    (:func:`scttfs_brian.analysis.energy_table`) on every platform of
    :data:`scttfs_brian.analysis.PLATFORMS`."""
    from ..analysis import PLATFORMS, energy_table

    table = energy_table([(k, s, lat) for k, (s, lat) in rows.items()], normalization="max")
    return {
        "normalization": "max: N and L each divided by their maximum over the SNN rows before weighting "
        "(scttfs_brian.analysis.energy_table)",
        "raw": {
            p: {k: s * e_i + lat * e_l for k, (s, lat) in rows.items()} for p, (e_i, e_l) in PLATFORMS.items()
        },
        "normalized": {p: {k: table.energy_of(k, p) for k in rows} for p in table.energies},
    }


def energy_note(energy: dict) -> str:
    from ..analysis import PLATFORMS

    return (
        "Energy: eq. 25, E = N E_i + L E_l (N spikes per image, L latency in steps), TrueNorth "
        f"(E_i, E_l) = {PLATFORMS['truenorth']}, SpiNNaker {PLATFORMS['spinnaker']}; normalization: "
        + str(energy["normalization"])
    )


def markdown_table(rows: list, energy: dict) -> str:
    """The headline table: one row per network (the ANN first), accuracy, latency, spikes, energy."""
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


def sweep_table(sweep: dict, tuned: dict, ann_acc: float) -> str:
    """Accuracy (%) vs window T for both codes, kernels from activations and fine-tuned."""
    Ts = sorted({int(t) for k in KINDS for t in (*sweep[k], *tuned[k])})
    lines = [
        f"| T | latency | SC-TTFS | SC-TTFS fine-tuned | TTFS | TTFS fine-tuned | (ANN {100 * ann_acc:.2f}) |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(d: dict, k: str, t: int) -> str:
        return f"{100 * d[k][str(t)]['accuracy']:.2f}" if str(t) in d[k] else ""

    for t in Ts:
        lat = next(d[k][str(t)]["latency_steps"] for d in (sweep, tuned) for k in KINDS if str(t) in d[k])
        lines.append(
            f"| {t} | {lat} | {cell(sweep, 'sc-ttfs', t)} | {cell(tuned, 'sc-ttfs', t)} "
            f"| {cell(sweep, 'ttfs', t)} | {cell(tuned, 'ttfs', t)} | |"
        )
    return "\n".join(lines)


def verdict(agreement, images: int) -> str:
    """One line on the Brian2 check (an :class:`~scttfs_brian.results.Agreement` of Brian2 against
    the torch engine)."""
    if agreement.exact:
        return (
            f"VERIFIED: Brian2 and the torch twin (float64) agree spike for spike on {images} images: "
            f"all t_enc/t_cal of the {len(agreement.timed_layers)} spiking layers identical, predictions "
            f"identical (max |output difference| {agreement.max_output_difference:.1e})"
        )
    return (
        f"MISMATCH between Brian2 and the torch twin: {agreement.mismatches()}; "
        f"predictions identical: {agreement.predictions_exact}"
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_T_figure(sweep: dict, tuned: dict, ann_accuracy: float, lossless_points: float):
    """Accuracy vs window for both codes, with kernels from activations and fine-tuned; the right
    panel zooms on the top, with the band of "lossless" (ANN - ``lossless_points``)."""
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
        ann - lossless_points, ann, color="0.85", zorder=0, label=f"lossless (ANN - {lossless_points})"
    )
    axes[1].set_ylim(ann - 3.0, min(100.0, ann + 1.0))
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("Digits CNN converted to SNNs (torch twin, float64)", fontsize=10)
    axes[1].set_title("zoom", fontsize=10)
    axes[1].legend(fontsize=7, loc="lower right")
    return fig


def raster_figure(graph, result, image: int, title: str):
    """Spikes of every layer of ``graph`` for input ``image`` of ``result``: encoding ``|``,
    calibration ``x``; time = the layer's window x T + the step inside it."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from ..brian.plotting import CALIBRATION_STYLE, ENCODING_STYLE

    plt = _pyplot()
    T = graph.T
    fig, ax = plt.subplots(figsize=(7, 5))
    offset, ticks = 0, []
    for name in graph.codes():
        te, tc = (a[image].reshape(-1) for a in result.spike_times[name])
        w = graph.windows[name]
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
    for b in range(graph.n_windows + 1):
        ax.axvline(b * T - 0.5, color="0.8", linewidth=0.6, zorder=0)
    ax.set_yticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    return fig
