"""The multi-seed study (scttfs_brian.pipeline.study) on a tiny configuration: what it writes,
that an interrupted study resumes to the same JSON, and the summary's statistics."""

import json

import numpy as np
import pytest

from scttfs_brian.pipeline.study import METHODS, StudyConfig, main, run_study
from scttfs_brian.pipeline.study_summary import bootstrap_interval, smallest_lossless_T, summarize

TINY = StudyConfig(
    seeds=(0, 1),
    windows=(2, 3),
    epochs=1,
    fine_tune_epochs=1,
    calibration_images=64,
    brian_images=4,
    model_kwargs={"channels": [4, 8], "hidden": 16, "pool_after": [1]},
)
COMMAND = "python -m scttfs_brian.pipeline.study --tiny"
KEYS = {
    "seed",
    "code",
    "T",
    "fine_tuned",
    "method",
    "accuracy",
    "agreement",
    "mean_abs_output_diff",
    "ann_accuracy",
    "spikes_per_image",
    "latency_steps",
}


def without_timings(study):
    return {k: v for k, v in study.items() if k != "timings"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny study, run once without interruption."""
    root = tmp_path_factory.mktemp("study")
    study = run_study(
        TINY, root / "study.json", progress=False, workers=1, work_dir=root / "work", command=COMMAND
    )
    return root, study


def test_the_study_writes_every_grid_point_and_a_brian2_check_per_seed(finished):
    root, study = finished
    grid = {(s, c, m, t) for s in TINY.seeds for c in TINY.codes for m in METHODS for t in TINY.windows}
    assert {(r["seed"], r["code"], r["method"], r["T"]) for r in study["runs"]} == grid
    for r in study["runs"]:
        assert KEYS <= set(r)
        assert 0.0 <= r["agreement"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0
        assert r["fine_tuned"] == (r["method"] == "fine-tuned")
        assert r["latency_steps"] == r["T"] * 3  # the 3 spiking layers encode in one window each
    assert [c["seed"] for c in study["brian_checks"]] == [0, 1]
    for c in study["brian_checks"]:
        assert (c["code"], c["method"], c["T"], c["inputs"]) == ("sc-ttfs", "fine-tuned", 3, 4)
        assert c["identical"], c
    assert json.loads((root / "study.json").read_text()) == study
    assert study["machine"]["cpu"] and study["command"] == COMMAND
    md = (root / "study.md").read_text()
    assert COMMAND in md and study["machine"]["cpu"] in md and "Seeds: 0, 1" in md
    assert "Target of issue 11" in md and "NOT met" in md  # 2 seeds cannot meet "4 of 5"


def test_an_interrupted_study_resumes_to_the_same_json(finished, tmp_path):
    _, study = finished
    out, work = tmp_path / "study.json", tmp_path / "work"

    def stop(what):
        raise KeyboardInterrupt(what)

    with pytest.raises(KeyboardInterrupt):
        run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND, on_point=stop)
    partial = json.loads(out.read_text())
    assert 0 < len(partial["runs"]) < len(study["runs"])
    resumed = run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND)
    assert without_timings(resumed) == without_timings(study)

    # interrupted inside a fine-tuning sweep: the last window is redone from the saved one before it
    for name in ("seed1-ttfs-fine-tuned-T3.json", "seed1-ttfs-bias-corrected-T3.json"):
        (work / "points" / name).unlink()
    (work / "states" / "seed1-ttfs-T3.pt").unlink()
    out.unlink()
    again = run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND)
    assert without_timings(again) == without_timings(study)


def test_a_study_with_another_configuration_is_refused(finished):
    root, _ = finished
    other = StudyConfig(**{**TINY.__dict__, "fine_tune_epochs": 2})
    with pytest.raises(ValueError, match="another configuration.*fine_tune_epochs"):
        run_study(other, root / "study.json", progress=False, workers=1, work_dir=root / "work")


def test_the_study_configuration_is_checked():
    with pytest.raises(ValueError, match="codes"):
        StudyConfig(codes=("sc-ttfs", "rate"))
    with pytest.raises(ValueError, match="windows"):
        StudyConfig(windows=(3, 2))
    with pytest.raises(ValueError, match="seeds"):
        StudyConfig(seeds=(1, 1))
    assert StudyConfig(fine_tuned=(False,)).methods == ("activations", "bias-corrected")


def test_main_parses_ranges(monkeypatch, tmp_path):
    seen = {}

    def fake(config, out, progress, **kw):
        seen.update(config=config, out=out, **kw)
        return {"runs": []}

    monkeypatch.setattr("scttfs_brian.pipeline.study.run_study", fake)
    assert (
        main(["--out", str(tmp_path / "s.json"), "--seeds", "0-2,7", "--windows", "1-3", "--no-progress"])
        == 0
    )
    assert seen["config"].seeds == (0, 1, 2, 7) and seen["config"].windows == (1, 2, 3)
    assert seen["command"].endswith("--seeds 0-2,7 --windows 1-3 --no-progress")


def test_summary_statistics():
    assert bootstrap_interval([np.ones(50), np.ones(50)]) == (1.0, 1.0)
    lo, hi = bootstrap_interval([np.arange(100) % 2 == 0] * 3)
    assert lo < 0.5 < hi
    bits = np.packbits(np.ones(8, dtype=bool)).tobytes().hex()
    runs = [
        {"seed": s, "code": "sc-ttfs", "method": "fine-tuned", "T": t, "agreement": a, "accuracy": 1.0}
        | {"agrees": bits, "correct": bits, "mean_abs_output_diff": 0.0, "spikes_per_image": 1.0}
        | {"ann_accuracy": 1.0, "latency_steps": 4 * t}
        for s, t, a in [(0, 2, 0.99), (0, 3, 1.0), (1, 2, 0.996), (1, 3, 1.0)]
    ]
    study = {"runs": runs, "lossless_agreement": 0.995, "test_images": 8}
    assert smallest_lossless_T(study, "sc-ttfs", "fine-tuned") == {0: 3, 1: 2}
    rows = summarize(study)
    assert {(r["T"], r["agreement"]["min"]) for r in rows} == {(2, 0.99), (3, 1.0)}


def test_two_worker_processes_write_what_one_process_writes(tmp_path):
    config = StudyConfig(
        **{**TINY.__dict__, "seeds": (0,), "codes": ("ttfs",), "windows": (2,), "brian_images": 0}
    )
    kw = {"progress": False, "command": COMMAND}
    one = run_study(config, tmp_path / "a.json", workers=1, work_dir=tmp_path / "a", **kw)
    two = run_study(config, tmp_path / "b.json", workers=2, work_dir=tmp_path / "b", **kw)
    assert without_timings(one) == without_timings(two) and len(two["runs"]) == 3
