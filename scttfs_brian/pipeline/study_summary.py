"""The markdown summary of a study (:mod:`.study`), written from its JSON alone.

Per (code, method, T): the mean over seeds, the spread over seeds (min - max) and a 95 % interval
from a two-level bootstrap (seeds resampled with replacement, then the test images of each drawn
seed resampled with replacement; 2000 draws from a fixed seed, so the summary is a function of the
JSON), of the agreement with the ANN and of the accuracy; and per seed, the smallest ``T`` at which
each code reaches the lossless agreement.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .rundir import atomic_write

__all__ = ["write_summary", "summarize", "summarize_cell", "bootstrap_interval", "smallest_lossless_T"]

METHOD_ORDER = ("activations", "bias-corrected", "fine-tuned")
_TITLES = {
    "activations": "kernels from activations (no fine-tuning; the conversion before issue 11)",
    "bias-corrected": "kernels from activations + bias correction (no fine-tuning)",
    "fine-tuned": "fine-tuned (distillation, validation selection, neighbouring-T start)",
}


def _unbits(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)


def bootstrap_interval(per_seed: list[np.ndarray], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean of 0/1 outcomes over seeds and images (two-level bootstrap)."""
    data = np.stack([np.asarray(a, dtype=np.float64) for a in per_seed])  # (seeds, images)
    k, n = data.shape
    rng = np.random.default_rng(seed)
    s = rng.integers(0, k, size=(draws, k))
    i = rng.integers(0, n, size=(draws, k, n))
    means = data[s[..., None], i].mean(axis=(1, 2))
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(study: dict) -> list[dict]:
    """One row per (code, method, T): means, spreads and intervals over the seeds."""
    n = int(study["test_images"])
    groups: dict = {}
    for r in study["runs"]:
        groups.setdefault((r["code"], r["method"], r["T"]), []).append(r)
    rows = []
    for (code, method, T), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        row = {"code": code, "method": method, "T": T, "seeds": [r["seed"] for r in runs]}
        for metric, bits in (("agreement", "agrees"), ("accuracy", "correct")):
            v = np.array([r[metric] for r in runs])
            row[metric] = {
                "mean": float(v.mean()),
                "min": float(v.min()),
                "max": float(v.max()),
                "ci95": bootstrap_interval([_unbits(r[bits], n) for r in runs]),
            }
        for metric in ("mean_abs_output_diff", "spikes_per_image", "ann_accuracy"):
            row[metric] = float(np.mean([r[metric] for r in runs]))
        row["latency_steps"] = runs[0]["latency_steps"]
        rows.append(row)
    return rows


def summarize_cell(study: dict, code: str, method: str, T: int) -> dict | None:
    """The row of :func:`summarize` for one ``(code, method, T)`` (the same numbers and interval as
    the summary's table, computed from that cell's runs alone), plus ``per_seed``: ``{seed:
    agreement}``; None when the study has no run of that cell."""
    runs = [r for r in study["runs"] if r["code"] == code and r["method"] == method and r["T"] == T]
    if not runs:
        return None
    (row,) = summarize({**study, "runs": runs})
    row["per_seed"] = {r["seed"]: r["agreement"] for r in sorted(runs, key=lambda r: r["seed"])}
    return row


def smallest_lossless_T(study: dict, code: str, method: str) -> dict:
    """``{seed: smallest T with agreement >= the lossless level, or None}``."""
    level = study["lossless_agreement"]
    out: dict = {}
    for r in study["runs"]:
        if r["code"] == code and r["method"] == method:
            out.setdefault(r["seed"], None)
            if r["agreement"] >= level and (out[r["seed"]] is None or r["T"] < out[r["seed"]]):
                out[r["seed"]] = r["T"]
    return dict(sorted(out.items()))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _cell(m: dict) -> str:
    return (
        f"{_pct(m['mean'])} [{_pct(m['ci95'][0])}, {_pct(m['ci95'][1])}] ({_pct(m['min'])}-{_pct(m['max'])})"
    )


def _target(study: dict) -> list[str]:
    """The issue's target: SC-TTFS fine-tuned >= lossless agreement at T <= 3 in >= 4 of 5 seeds."""
    level = 100 * study["lossless_agreement"]
    lines = []
    for code in ("sc-ttfs", "ttfs"):
        first = smallest_lossless_T(study, code, "fine-tuned")
        if not first:
            continue
        hits = sum(1 for t in first.values() if t is not None and t <= 3)
        at3 = [
            r["agreement"]
            for r in study["runs"]
            if r["code"] == code and r["method"] == "fine-tuned" and r["T"] == 3
        ]
        at3_text = ", ".join(_pct(a) for a in at3) if at3 else "T = 3 not in the sweep"
        lines.append(
            f"- {code.upper()} fine-tuned reaches >= {level:.1f} % agreement at T <= 3 in **{hits} of "
            f"{len(first)} seeds** (agreement at T = 3 per seed: {at3_text} %)."
        )
    if lines:
        sc = smallest_lossless_T(study, "sc-ttfs", "fine-tuned")
        hits = sum(1 for t in sc.values() if t is not None and t <= 3)
        # 4 of 5 seeds: at least 80 % of at least 5 seeds
        verdict = "met" if len(sc) >= 5 and hits >= 0.8 * len(sc) else "NOT met"
        lines.insert(
            0,
            f"**Target of issue 11** (SC-TTFS fine-tuned >= {level:.1f} % agreement at T <= 3 in >= 4 of "
            f"5 seeds): **{verdict}** ({hits} of {len(sc)} seeds).",
        )
    return lines


def _side_by_side(rows: list[dict]) -> list[str]:
    """Agreement vs T of every method and code in one table (mean over seeds [95 % interval])."""
    cols = sorted({(r["code"], r["method"]) for r in rows}, key=lambda c: (c[0], METHOD_ORDER.index(c[1])))
    cell = {(r["code"], r["method"], r["T"]): r["agreement"] for r in rows}
    out = [
        "## Agreement with the ANN (%) against T: before (kernels from activations), after (bias "
        "correction), fine-tuned",
        "",
        "| T | " + " | ".join(f"{c} {m}" for c, m in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for T in sorted({r["T"] for r in rows}):
        vals = []
        for c, m in cols:
            a = cell.get((c, m, T))
            vals.append(
                "" if a is None else f"{_pct(a['mean'])} [{_pct(a['ci95'][0])}, {_pct(a['ci95'][1])}]"
            )
        out.append(f"| {T} | " + " | ".join(vals) + " |")
    return [*out, ""]


def write_summary(study: dict, path: str | os.PathLike) -> Path:
    """Write the markdown summary of ``study`` (the dict :func:`.study.run_study` writes) to ``path``."""
    rows = summarize(study)
    m = study["machine"]
    seeds = study["config"]["seeds"]
    level = 100 * study["lossless_agreement"]
    wall = sum(i["wall_s"] for i in study.get("timings", {}).get("invocations", []))
    ann = sorted({(r["seed"], r["ann_accuracy"]) for r in study["runs"]})
    text = [
        "# Digits study: agreement of the converted SNNs with the ANN",
        "",
        "Generated by `scttfs_brian/pipeline/study_summary.py` from `digits_study.json`; do not edit.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}, torch {m['torch']}",
        f"- Seeds: {', '.join(map(str, seeds))}; test images: {study['test_images']} (digits, normalized)",
        f"- Command: `{study['command']}`",
        f"- Wall time (all invocations): {wall / 60:.1f} min",
        f"- ANN test accuracy per seed: {', '.join(f'{s}: {_pct(a)} %' for s, a in ann)}",
        f"- **Agreement** = share of test images on which the SNN predicts what the ANN predicts; "
        f"**lossless** = agreement >= {level:.1f} %. Cells: mean over seeds [95 % bootstrap interval over "
        "seeds and images] (min-max over seeds), in %.",
        "",
        *_target(study),
        "",
    ]
    text += _side_by_side(rows)
    for method in ("activations", "bias-corrected", "fine-tuned"):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: (r["code"], r["T"]))
        if not mine:
            continue
        text += [
            f"## {_TITLES[method]}",
            "",
            "| code | T | agreement (%) | accuracy (%) | mean abs output diff | spikes/image | latency (steps) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            text.append(
                f"| {r['code']} | {r['T']} | {_cell(r['agreement'])} | {_cell(r['accuracy'])} | "
                f"{r['mean_abs_output_diff']:.3f} | {r['spikes_per_image']:.0f} | {r['latency_steps']} |"
            )
        text.append("")
    text += [f"## Smallest T with >= {level:.1f} % agreement, per seed", ""]
    text += ["| code | method | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    text += ["|---|---|" + "---|" * len(seeds)]
    for code in study["config"]["codes"]:
        for method in ("activations", "bias-corrected", "fine-tuned"):
            first = smallest_lossless_T(study, code, method)
            if first:
                cells = [str(first.get(s)) if first.get(s) is not None else "none" for s in seeds]
                text.append(f"| {code} | {method} | " + " | ".join(cells) + " |")
    text += [
        "",
        "`none`: not reached within the sweep.",
        "",
        "## Brian2 check (spike for spike vs the torch engine)",
        "",
    ]
    for c in study.get("brian_checks", []):
        verdict = "identical" if c["identical"] else "MISMATCH"
        text.append(
            f"- seed {c['seed']}: {c['code']} {c['method']} T = {c['T']}, {c['inputs']} test images: **{verdict}** "
            f"(spikes identical: {c['spikes_identical']}, predictions identical: {c['predictions_identical']}, "
            f"max |output difference| {c['max_output_difference']:.1e})"
        )
    if not study.get("brian_checks"):
        text.append("- none in this study")
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(text) + "\n"))
    return path


#: The markers of the README's block written by :func:`readme_block` (``--readme``).
README_BEGIN = "<!-- study results: python -m scttfs_brian.pipeline.study_summary --readme README.md -->"
README_END = "<!-- end of study results -->"


def readme_block(study: dict, json_path: str = "analysis/results/digits_study.json") -> str:
    """The README's headline block: machine, seeds, command, the target verdict and agreement vs T
    with intervals, all from the study's JSON (the README quotes nothing else of it)."""
    m = study["machine"]
    seeds = study["config"]["seeds"]
    rows = [r for r in summarize(study) if r["method"] in ("bias-corrected", "fine-tuned")]
    text = [
        README_BEGIN,
        f"From `{json_path}` (summary: `{Path(json_path).with_suffix('.md').as_posix()}`): "
        f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), {study['test_images']} test images each, "
        f"{m['cpu']} ({m['cores']} cores), command `{study['command']}`.",
        "",
        *_target(study),
        "",
        *_side_by_side(rows)[2:],
        README_END,
    ]
    return "\n".join(text)


def update_readme(readme: str | os.PathLike, study: dict) -> bool:
    """Replace the block between :data:`README_BEGIN` and :data:`README_END` in ``readme``;
    returns whether it changed. Refuses a README without the markers."""
    path = Path(readme)
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no study block: add the lines {README_BEGIN!r} and {README_END!r}")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = head + readme_block(study) + tail
    if new != text:
        atomic_write(path, lambda tmp: Path(tmp).write_text(new))
    return new != text


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m scttfs_brian.pipeline.study_summary")
    p.add_argument("--json", default="analysis/results/digits_study.json")
    p.add_argument("--summary", help="write the markdown summary here (default: --json with .md)")
    p.add_argument("--readme", help="also rewrite the study block of this README")
    args = p.parse_args(argv)
    study = json.loads(Path(args.json).read_text())
    write_summary(study, args.summary or Path(args.json).with_suffix(".md"))
    if args.readme:
        update_readme(args.readme, study)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
