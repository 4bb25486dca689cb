"""Tables 2 and 3 of Feng et al. 2024 regenerated as markdown, plus this project's digits row.

The rows are the paper's numbers (``figures/data/paper_tables.csv``: method, reference,
network, dataset, ANN and SNN accuracy, conversion loss, latency in steps, spikes per image;
a dash marks a number the paper does not give). Two columns are added: the normalized energy of
eq. 25 on TrueNorth and SpiNNaker (``N`` and ``L`` divided by their maxima over the rows of the
table that have a spike count; see :func:`scttfs_brian.analysis.energy_table`).

Below them comes this project's measured row, on the 8x8 digits data set, which is a
**different data set** (not comparable with CIFAR): it is read from a metrics JSON written by
``make demo`` (default ``runs/demo/metrics.json``, keys ``ann_accuracy``, ``snn_accuracy``,
``latency_steps``, ``spikes_per_image``; accuracies given as fractions <= 1 are shown in %).
Without that file, a note says how to produce it; no number is made up.

Run: ``python figures/tables_2_3.py [metrics.json]`` (writes ``figures/out/tables_2_3.md`` and
prints it).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from scttfs_brian.analysis import Table, load_method_results, method_energy_table

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PAPER_TABLES = HERE / "data" / "paper_tables.csv"
METRICS = HERE.parent / "runs" / "demo" / "metrics.json"
NO_METRICS_NOTE = "(run `make demo` to add the digits row)"

COLUMNS = (
    "Network",
    "Method",
    "ANN acc/%",
    "SNN acc/%",
    "Loss",
    "Latency",
    "Spikes/10^6",
    "E TrueNorth",
    "E SpiNNaker",
)


def _fmt(x: float | None, spec: str) -> str | None:
    """The paper's precision (2 decimals for accuracies, 3 for spikes in millions)."""
    return None if x is None else format(x, spec)


def _noted(r) -> bool:
    return bool(r.note) and r.note != "this paper"


def paper_table(results, table: int) -> Table:
    rows = [r for r in results if r.table == table]
    et = method_energy_table(rows)
    out = []
    for r in rows:
        name = f"{r.network} {r.label}"
        has_e = name in et.names
        latency = None if r.latency is None else f"{'>' if r.latency_lower_bound else ''}{r.latency:g}"
        out.append(
            (
                r.network,
                r.label + (" *" if _noted(r) else ""),
                _fmt(r.ann_acc, ".2f"),
                _fmt(r.snn_acc, ".2f"),
                _fmt(r.loss, ".2f"),
                latency,
                _fmt(None if r.spikes is None else r.spikes / 1e6, ".3f"),
                _fmt(et.energy_of(name, "truenorth") if has_e else None, ".4f"),
                _fmt(et.energy_of(name, "spinnaker") if has_e else None, ".4f"),
            )
        )
    dataset = rows[0].dataset
    return Table(
        COLUMNS, tuple(out), f"Table {table}: ANN-SNN conversion methods on {dataset} (paper's numbers)"
    )


def _percent(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return 100.0 * x if x <= 1.0 else x


def _method_label(key: str, T) -> str:
    """``"ttfs+ft@T8"`` -> ``"TTFS fine-tuned, T=8"`` (this project's demo keys)."""
    base, _, at = key.partition("@")
    label = base.replace("+ft", " fine-tuned").replace("+bc", " bias-corrected")
    label = label.replace("sc-ttfs", "SC-TTFS").replace("ttfs", "TTFS")
    window = at[1:] if at.startswith("T") else T
    return f"{label}, T={window}" if window is not None else label


def digits_row(metrics_path: str | Path | None) -> str:
    """Markdown for this project's measured row, or the note saying how to get it."""
    path = Path(metrics_path) if metrics_path is not None else METRICS
    if not path.is_file():
        return f"This project, digits 8x8: {NO_METRICS_NOTE}\n"
    m = json.loads(path.read_text(encoding="utf-8"))
    ann = _percent(m.get("ann_accuracy"))
    # `scttfs demo` writes one entry per method ({"sc-ttfs+ft": 0.99, ...}); a single number
    # is read as the SC-TTFS row
    accs, lat, spk = m.get("snn_accuracy"), m.get("latency_steps"), m.get("spikes_per_image")
    if not isinstance(accs, dict):
        accs, lat, spk = {"sc-ttfs": accs}, {"sc-ttfs": lat}, {"sc-ttfs": spk}
    rows = []
    for key, acc in accs.items():
        snn = _percent(acc)
        spikes = (spk or {}).get(key)
        rows.append(
            (
                m.get("dataset", "digits 8x8"),
                m.get("network", "DigitsCNN"),
                _method_label(key, m.get("T")),
                ann,
                snn,
                None if ann is None or snn is None else ann - snn,
                (lat or {}).get(key),
                None if spikes is None else float(spikes),
            )
        )
    table = Table(
        ("Dataset", "Network", "Method", "ANN acc/%", "SNN acc/%", "Loss", "Latency", "Spikes/image"),
        tuple(rows),
        f"This project, measured on a different data set (from {path.name}; not comparable with CIFAR)",
    )
    return table.to_markdown(".4g")


def markdown(results, metrics_path: str | Path | None = None) -> str:
    parts = ["# Tables 2 and 3 of Feng et al. 2024 (regenerated)\n"]
    for table in (2, 3):
        parts.append(paper_table(results, table).to_markdown(".4g"))
    notes = [f"Table {r.table}, {r.network} {r.label}: {r.note}" for r in results if _noted(r)]
    parts.append(
        "E: eq. 25 with N and L divided by their maxima over the rows of the table with a spike count "
        "(rows without a spike count: —).\n\nNotes on the paper's numbers (rows marked *):\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n"
    )
    parts.append(digits_row(metrics_path))
    return "\n".join(parts)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(
    outdir: str | Path = OUT, metrics: str | Path | None = None, tables: str | Path = PAPER_TABLES
) -> list[Path]:
    text = markdown(load_method_results(tables), metrics)
    path = Path(outdir) / "tables_2_3.md"
    _write_atomic(path, text)
    print(text)
    return [path]


if __name__ == "__main__":
    main(OUT, sys.argv[1] if len(sys.argv) > 1 else None)
