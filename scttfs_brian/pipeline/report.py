"""What an experiment reports: the markdown tables (agreement with the ANN beside accuracy), the
energy estimate (eq. 25) and its note, the verdict of the Brian2 check, and the figures (returned as matplotlib figures; the caller saves
them with :meth:`~.rundir.Run.save_figure`)."""

from __future__ import annotations

from .stages import KINDS

__all__ = [
    "energy_estimates",
    "energy_note",
    "agreement_note",
    "markdown_table",
    "sweep_table",
    "verdict",
    "agreement_vs_T_figure",
    "raster_figure",
]

#: The methods of a sweep (the study's names) and their column titles.
SWEEP_METHODS = {"activations": "", "bias-corrected": " bias-corrected", "fine-tuned": " fine-tuned"}


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


def agreement_note(images: int) -> str:
    """What the agreement and "lossless" columns of :func:`markdown_table` mean."""
    from ..training import LOSSLESS_AGREEMENT

    return (
        f"Agreement: share of the {images} test images on which the SNN predicts what the ANN predicts (the "
        "conversion metric; accuracy on the labels beside it); mean |output - ANN| over images and outputs; "
        f"lossless = agreement >= {100 * LOSSLESS_AGREEMENT:.1f} % (scttfs_brian.training.LOSSLESS_AGREEMENT)."
    )


def markdown_table(rows: list, energy: dict) -> str:
    """The headline table: one row per network (the ANN first), agreement with the ANN, mean
    ``|output - ANN output|``, lossless (on agreement), accuracy, latency, spikes, energy."""
    from ..training import LOSSLESS_AGREEMENT

    norm = energy["normalized"] or None
    src = norm if norm else energy["raw"]
    tag = "" if norm else " (unnormalized)"
    lines = [
        "| network | engine | agreement (%) | mean abs output diff | lossless | accuracy (%) | vs ANN (points) "
        f"| latency (steps) | spikes / image | E TrueNorth{tag} | E SpiNNaker{tag} |",
        "|" + "---|" * 11,
    ]
    ann = rows[0]["accuracy"]
    for r in rows:
        snn = r["latency_steps"] is not None
        cells = [
            r["network"], r["engine"],
            f"{100 * r['agreement']:.2f}" if snn else "",
            f"{r['mean_abs_output_diff']:.3f}" if snn else "",
            ("yes" if r["agreement"] >= LOSSLESS_AGREEMENT else "no") if snn else "",
            f"{100 * r['accuracy']:.2f}",
            f"{100 * (r['accuracy'] - ann):+.2f}" if snn else "",
            str(r["latency_steps"]) if snn else "",
            f"{r['spikes_per_image']:.0f}" if snn else "",
            f"{src['truenorth'][r['label']]:.3f}" if snn else "",
            f"{src['spinnaker'][r['label']]:.3f}" if snn else "",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(results: dict, ann_acc: float) -> str:
    """Agreement with the ANN (%) vs window T, accuracy (%) in parentheses, for both codes and
    every method of ``results`` (``{method: {kind: {T: metrics}}}``)."""
    methods = [m for m in SWEEP_METHODS if m in results]
    cols = [(k, m) for k in KINDS for m in methods]
    Ts = sorted({int(t) for m in methods for k in KINDS for t in results[m][k]})
    lines = [
        "| T | latency | "
        + " | ".join(f"{k.upper()}{SWEEP_METHODS[m]}" for k, m in cols)
        + f" | (ANN accuracy {100 * ann_acc:.2f}) |",
        "|---|---|" + "---|" * (len(cols) + 1),
    ]

    def cell(k: str, m: str, t: int) -> str:
        r = results[m][k].get(str(t))
        return "" if r is None else f"{100 * r['agreement']:.2f} ({100 * r['accuracy']:.2f})"

    for t in Ts:
        lat = next(
            results[m][k][str(t)]["latency_steps"] for m in methods for k in KINDS if str(t) in results[m][k]
        )
        lines.append(f"| {t} | {lat} | " + " | ".join(cell(k, m, t) for k, m in cols) + " | |")
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


def agreement_vs_T_figure(results: dict, ann_accuracy: float):
    """Agreement with the ANN vs window T for both codes and every method of ``results``
    (``{method: {kind: {T: metrics}}}``): the whole range, then a zoom on the top with the band
    of "lossless" (agreement >= :data:`~scttfs_brian.training.LOSSLESS_AGREEMENT`); and accuracy
    vs T beside the ANN's."""
    from ..training import LOSSLESS_AGREEMENT

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    styles = {"activations": ":o", "bias-corrected": "-s", "fine-tuned": "--*"}
    names = {"activations": "kernels from activations", "bias-corrected": "bias-corrected",
             "fine-tuned": "fine-tuned"}  # fmt: skip
    Ts = sorted({int(t) for m in results for k in KINDS for t in results[m][k]})
    level = 100 * LOSSLESS_AGREEMENT
    for ax, metric in zip(axes, ("agreement", "agreement", "accuracy")):
        for kind, color in (("sc-ttfs", "C0"), ("ttfs", "C1")):
            for method in (m for m in styles if m in results):
                ts = sorted(int(t) for t in results[method][kind])
                ys = [100 * results[method][kind][str(t)][metric] for t in ts]
                ax.plot(
                    ts,
                    ys,
                    styles[method],
                    color=color,
                    markersize=6,
                    label=f"{kind.upper()}, {names[method]}",
                )
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.set_xlabel("window T (time steps)")
    axes[1].axhspan(level, 100.0, color="0.85", zorder=0, label=f"lossless (agreement >= {level:.1f} %)")
    axes[1].set_ylim(level - 4.0, 100.2)
    axes[2].axhline(100 * ann_accuracy, color="0.3", linestyle=":", linewidth=1.2, label="ANN")
    axes[2].set_ylim(100 * ann_accuracy - 4.0, min(100.5, 100 * ann_accuracy + 1.5))
    axes[0].set_ylabel("agreement with the ANN (%)")
    axes[2].set_ylabel("test accuracy (%)")
    axes[0].set_title("Digits CNN converted to SNNs: agreement with the ANN", fontsize=10)
    axes[1].set_title("agreement, zoom", fontsize=10)
    axes[2].set_title("accuracy, zoom", fontsize=10)
    handles, labels = axes[1].get_legend_handles_labels()
    handles += axes[2].get_lines()[-1:]
    labels += ["ANN accuracy"]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
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
