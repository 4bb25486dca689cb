"""The experiment pipeline without training: the demo's configuration, the run directory's stages,
resume and configuration check, and the report's tables."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from scttfs_brian.pipeline import QUICK, DemoConfig, Run, UsageError, atomic_write, report, rundir
from scttfs_brian.pipeline.demo import compare_with_study
from scttfs_brian.pipeline.errors import StaleArtifact
from scttfs_brian.pipeline.study import StudyConfig
from scttfs_brian.pipeline.study_summary import summarize, summarize_cell
from scttfs_brian.results import SimulationResult


# --------------------------------------------------------------------------------------------
# DemoConfig
# --------------------------------------------------------------------------------------------
def test_demo_config_windows_always_include_T():
    config = DemoConfig(T=5, sweep=[8, 2, 4, 2], fine_tune_sweep=[4])
    assert config.sweep == [2, 4, 5, 8]
    assert config.fine_tune_sweep == {"sc-ttfs": [4, 5], "ttfs": [4, 5]}
    # by default both codes are fine-tuned at the study's windows up to T (the chain the study runs)
    assert DemoConfig().fine_tune_sweep == {"sc-ttfs": [1, 2, 3], "ttfs": [1, 2, 3]}
    assert DemoConfig(T=4).fine_tune_sweep == {"sc-ttfs": [1, 2, 3, 4], "ttfs": [1, 2, 3, 4]}


def test_demo_trains_and_fine_tunes_with_the_studys_settings():
    demo, study = DemoConfig(), StudyConfig()
    for key in ("epochs", "lr", "model_kwargs", "calibration_images", "fine_tune_epochs", "fine_tune_lr",
                "fine_tune_kernel_lr", "layer_weight", "validation"):  # fmt: skip
        assert getattr(demo, key) == getattr(study, key), key
    assert demo.weight_decay == 0.0 and demo.model == "digits-cnn"  # the study's ANN


def test_demo_config_create_applies_quick_then_the_options_given():
    config = DemoConfig.create(quick=True, epochs=None, images=6, fine_tune_sweep=None)
    assert config.quick and config.epochs == QUICK["epochs"] and config.images == 6
    assert config.fine_tune_sweep == {"sc-ttfs": [3], "ttfs": [3]}
    assert DemoConfig.create().to_dict() == json.loads(json.dumps(DemoConfig().to_dict()))


def test_demo_config_fine_tuning_windows_must_be_in_the_sweep():
    with pytest.raises(
        ValueError, match=r"fine-tuning windows \[4\] are not in the sweep \[2, 3\].*--sweep 2 3 4"
    ):
        DemoConfig.create(sweep=[2, 3], fine_tune_sweep=[4])
    # the default windows are restricted to a sweep given without them
    assert DemoConfig.create(sweep=[2, 6]).fine_tune_sweep == {"sc-ttfs": [2, 3], "ttfs": [2, 3]}


def test_demo_config_sections_of_config_json():
    config = DemoConfig()
    train = config.train_config()
    assert train["data_root"] is None and train["model"] == "digits-cnn" and "T" not in train
    assert config.to_dict()["quick"] is False and config.to_dict()["T"] == 3
    with pytest.raises(ValueError, match="bundled digits"):
        DemoConfig(dataset="cifar10")


# --------------------------------------------------------------------------------------------
# Run: stages, resume, configuration
# --------------------------------------------------------------------------------------------
def test_a_stage_runs_then_is_skipped_on_resume(tmp_path, monkeypatch):
    calls, hooked = [], []
    monkeypatch.setattr(rundir, "STAGE_HOOK", lambda run, name: hooked.append(name))

    def write():
        calls.append(1)
        Run(tmp_path, resume=False, progress=False, command="t").write_json("out.json", {"a": 1})

    assert Run(tmp_path, resume=False, progress=False, command="t").stage("one", ["out.json"], write)
    assert not Run(tmp_path, resume=True, progress=False, command="t").stage("one", ["out.json"], write)
    assert calls == [1] and hooked == ["one", "one"]
    log = (tmp_path / "log.txt").read_text()
    assert "t: stage one: running" in log and "stage one: skipped (output exists: out.json)" in log


def test_resume_refuses_another_configuration(tmp_path):
    Run(tmp_path, resume=False, progress=False, command="c").store_config({"T": 3, "x": [1]})
    Run(tmp_path, resume=True, progress=False, command="c").store_config({"T": 3, "x": [1]})
    with pytest.raises(UsageError, match=r"different configuration .*T: 3 -> 4"):
        Run(tmp_path, resume=True, progress=False, command="c").store_config({"T": 4, "x": [1]})
    Run(tmp_path, resume=False, progress=False, command="c").store_config({"T": 4})  # starting over
    assert json.loads((tmp_path / "config.json").read_text()) == {"c": {"T": 4}}


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "a.txt", fail)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def test_tables_and_energy():
    rows = [
        {"label": "ann", "network": "ANN", "engine": "torch", "accuracy": 0.9, "agreement": None,
         "mean_abs_output_diff": None, "latency_steps": None, "spikes_per_image": None},
        {"label": "a", "network": "A", "engine": "torch twin", "accuracy": 0.88, "agreement": 0.995,
         "mean_abs_output_diff": 0.0125, "latency_steps": 9, "spikes_per_image": 100.0},
        {"label": "b", "network": "B", "engine": "Brian2", "accuracy": 0.9, "agreement": 0.9944,
         "mean_abs_output_diff": 0.5, "latency_steps": 18, "spikes_per_image": 50.0},
    ]  # fmt: skip
    energy = report.energy_estimates(
        {r["label"]: (r["spikes_per_image"], r["latency_steps"]) for r in rows[1:]}
    )
    assert energy["raw"]["truenorth"]["a"] == pytest.approx(100 * 0.4 + 9 * 0.6)
    assert energy["normalized"]["truenorth"]["a"] == pytest.approx(0.4 * 1 + 0.6 * 0.5)
    table = report.markdown_table(rows, energy).splitlines()
    assert table[0].startswith(
        "| network | engine | agreement (%) | mean abs output diff | lossless | accuracy (%) |"
    )
    assert table[2] == "| ANN | torch |  |  |  | 90.00 |  |  |  |  |  |"
    # lossless is on agreement (>= 99.5 %), whatever the accuracy
    assert table[3] == "| A | torch twin | 99.50 | 0.013 | yes | 88.00 | -2.00 | 9 | 100 | 0.700 | 0.820 |"
    assert table[4] == "| B | Brian2 | 99.44 | 0.500 | no | 90.00 | +0.00 | 18 | 50 | 0.800 | 0.680 |"
    assert "lossless = agreement >= 99.5 %" in report.agreement_note(450)
    r2 = {"accuracy": 0.5, "agreement": 0.25, "latency_steps": 6}
    results = {
        "activations": {"sc-ttfs": {"2": r2}, "ttfs": {}},
        "bias-corrected": {"sc-ttfs": {}, "ttfs": {}},
        "fine-tuned": {"sc-ttfs": {}, "ttfs": {"2": {**r2, "agreement": 1.0}}},
    }
    sweep = report.sweep_table(results, 0.9).splitlines()
    assert sweep[0] == (
        "| T | latency | SC-TTFS | SC-TTFS bias-corrected | SC-TTFS fine-tuned | TTFS | TTFS bias-corrected "
        "| TTFS fine-tuned | (ANN accuracy 90.00) |"
    )
    assert sweep[2] == "| 2 | 6 | 25.00 (50.00) |  |  |  |  | 100.00 (50.00) | |"
    assert "TrueNorth (E_i, E_l) = (0.4, 0.6)" in report.energy_note(energy)


# --------------------------------------------------------------------------------------------
# the demo against the study
# --------------------------------------------------------------------------------------------
def _bits(mask) -> str:
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def _study(path, cells: dict) -> dict:
    """A study JSON of 3 seeds and 8 test images; ``cells``: {(code, method, T): per-seed agreement
    masks}."""
    runs = []
    for (code, method, T), masks in cells.items():
        for seed, mask in enumerate(masks):
            runs.append({"seed": seed, "code": code, "method": method, "T": T, "fine_tuned": method == "fine-tuned",
                         "agreement": float(np.mean(mask)), "accuracy": float(np.mean(mask)), "agrees": _bits(mask),
                         "correct": _bits(mask), "mean_abs_output_diff": 0.1, "spikes_per_image": 100.0,
                         "ann_accuracy": 1.0, "latency_steps": 3 * T})  # fmt: skip
    study = {"config": {**StudyConfig().to_dict(), "seeds": [0, 1, 2]}, "machine": {"cpu": "Test CPU"},
             "lossless_agreement": 0.995, "test_images": 8, "runs": runs}  # fmt: skip
    path.write_text(json.dumps(study))
    return study


#: seeds 0, 1, 2 agree with the ANN on 6, 7 and 8 of the 8 test images
SC_FT = [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0], [1] * 8]


def test_one_cell_of_the_study_is_the_summarys_row(tmp_path):
    study = _study(
        tmp_path / "s.json", {("sc-ttfs", "fine-tuned", 3): SC_FT, ("ttfs", "fine-tuned", 3): SC_FT[::-1]}
    )
    row = summarize_cell(study, "sc-ttfs", "fine-tuned", 3)
    assert (
        row["agreement"]
        == next(
            r for r in summarize(study) if (r["code"], r["method"], r["T"]) == ("sc-ttfs", "fine-tuned", 3)
        )["agreement"]
    )
    assert row["agreement"]["mean"] == pytest.approx(0.875) and row["seeds"] == [0, 1, 2]
    assert row["per_seed"] == {0: 0.75, 1: 0.875, 2: 1.0}
    # the two-level bootstrap (2000 draws from seed 0) of 6/8, 7/8, 8/8
    assert row["agreement"]["ci95"] == pytest.approx((2 / 3, 1.0))
    assert summarize_cell(study, "sc-ttfs", "fine-tuned", 4) is None


def test_the_demo_says_inside_or_outside_the_studys_interval(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the file is named relative to the working directory
    path = tmp_path / "digits_study.json"
    study = _study(path, {("sc-ttfs", "fine-tuned", 3): SC_FT})
    lo, hi = summarize_cell(study, "sc-ttfs", "fine-tuned", 3)["agreement"]["ci95"]
    for value, verdict in (
        (0.875, "inside the study's interval"),
        (0.5, "OUTSIDE the study's interval (below)"),
    ):
        out = compare_with_study({("sc-ttfs", "fine-tuned"): value, ("ttfs", "bias-corrected"): 0.9}, T=3, seed=1,
                                 path=path, settings={"epochs": 20, "test_images": 8})  # fmt: skip
        assert out["found"] and out["differing_settings"] == {}
        assert out["lines"][0].startswith(
            "Against the multi-seed study (digits_study.json: 3 seeds, Test CPU; lossless = agreement >= 99.5 %)"
        )
        assert out["lines"][1] == (
            f"- SC-TTFS T=3 fine-tuned: agreement {100 * value:.2f} % in this run (seed 1); the study 87.50 % "
            f"[{100 * lo:.2f}, {100 * hi:.2f}] over 3 seeds (range 75.00-100.00; its seed 1: 87.50 %): {verdict}"
        )
        assert out["lines"][2] == (
            "- TTFS T=3 bias-corrected: agreement 90.00 % in this run (seed 1); the study has no ttfs "
            "bias-corrected run at T=3"
        )
        (cell,) = out["cells"]
        assert cell["inside"] == (value == 0.875) and cell["study_same_seed"] == 0.875
    # settings that differ from the study's are named
    out = compare_with_study({("sc-ttfs", "fine-tuned"): 0.875}, T=3, seed=7, path=path,
                             settings={"epochs": 3, "lr": StudyConfig().lr, "test_images": 12})  # fmt: skip
    assert "its seed" not in out["lines"][1]  # seed 7 is not in the study
    assert out["lines"][-1] == (
        "  This run's settings differ from the study's (epochs: 3 here, 20 there; test_images: 12 here, 8 there): "
        "the comparison is indicative only."
    )


def test_the_demo_without_a_study_file_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = compare_with_study({("sc-ttfs", "fine-tuned"): 1.0}, T=3, seed=0, path=tmp_path / "none.json")
    assert not out["found"] and out["cells"] == []
    assert out["lines"] == [
        "Study comparison: no study file at none.json (`make study` writes it; --study-results names another)"
    ]
    (tmp_path / "bad.json").write_text("{")
    (line,) = compare_with_study({}, T=3, seed=0, path=tmp_path / "bad.json")["lines"]
    assert "bad.json cannot be read as a study" in line


def test_verdict_from_an_agreement():
    counts = {"l1": np.array([[1, 0], [2, 1]])}
    times = {"l1": (np.array([[0, -1], [1, 2]]), np.array([[-1, -1], [2, -1]]))}
    a = SimulationResult(np.eye(2), np.array([0, 1]), counts, 3, times, "brian2")
    times_b = {"l1": tuple(t.copy() for t in times["l1"])}
    b = SimulationResult(np.eye(2), np.array([0, 1]), counts, 3, times_b, "torch")
    assert report.verdict(a.compare(b), 2).startswith(
        "VERIFIED: Brian2 and the torch twin (float64) agree spike for spike on 2 images: "
        "all t_enc/t_cal of the 1 spiking layers identical"
    )
    b.spike_times["l1"][0][1, 1] = 0
    assert report.verdict(a.compare(b), 2) == (
        "MISMATCH between Brian2 and the torch twin: l1: 1 t_enc, 0 t_cal, 0 counts; predictions identical: True"
    )


# --------------------------------------------------------------------------------------------
# one writer per run directory
# --------------------------------------------------------------------------------------------
def _try_open(run_dir) -> subprocess.CompletedProcess:
    code = ("import sys; from scttfs_brian.pipeline import Run\n"
            "try:\n    Run(sys.argv[1], resume=False, progress=False, command='simulate')\n"
            "except Exception as err:\n    print(type(err).__name__, err); sys.exit(1)\n")  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=120
    )


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    with Run(tmp_path, resume=False, progress=False, command="demo", command_line="scttfs demo --quick"):
        t0 = time.perf_counter()
        other = _try_open(tmp_path)
        assert other.returncode == 1
        assert other.stdout.startswith("RunBusy")
        assert f"in use by process {os.getpid()} (`scttfs demo --quick`" in other.stdout
        assert time.perf_counter() - t0 < 60  # refused at once, not after waiting
        # within this process the lock is shared
        Run(tmp_path, resume=True, progress=False, command="demo").close()
    assert _try_open(tmp_path).returncode == 0  # released at the end of the command


def test_a_run_directory_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Run(tmp_path / "f", resume=False, progress=False, command="t")


# --------------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------------
def _stage(run, name, value, settings, upstream=()):
    return run.stage(name, [name], lambda: run.write_json(name, value), settings=settings, upstream=upstream)


def test_provenance_records_settings_and_upstream_hashes(tmp_path):
    with Run(tmp_path, resume=False, progress=False, command="train") as run:
        _stage(run, "a.json", 1, {"seed": 0})
        _stage(run, "b.json", 2, {"T": 3}, upstream=["a.json"])
        record = run.provenance()["b.json"]
    assert record["command"] == "train" and record["settings"] == {"T": 3}
    assert record["upstream"] == {"a.json": rundir.file_sha256(tmp_path / "a.json")}
    assert record["sha256"] == rundir.file_sha256(tmp_path / "b.json")


def test_a_stale_artifact_is_refused_then_rebuilt_on_resume(tmp_path):
    with Run(tmp_path, resume=False, progress=False, command="convert") as run:
        _stage(run, "a.json", 1, {"seed": 0})
        _stage(run, "b.json", 2, {}, upstream=["a.json"])
        run.require_current("b.json", "convert again")  # current
        _stage(run, "a.json", 10, {"seed": 1})  # retrained: b.json was made from the old a.json
        with pytest.raises(
            StaleArtifact, match=r"b.json is stale: b.json was made from another a.json .* convert again"
        ):
            run.require_current("b.json", "convert again")
    with Run(tmp_path, resume=True, progress=False, command="convert") as run:
        assert _stage(run, "b.json", 2, {}, upstream=["a.json"])  # rebuilt, not skipped
        assert not _stage(run, "b.json", 2, {}, upstream=["a.json"])  # now current: skipped
    assert (
        "b.json: outputs are stale (b.json was made from another a.json)"
        in (tmp_path / "log.txt").read_text()
    )


def test_another_commands_artifact_is_never_overwritten(tmp_path):
    with Run(tmp_path, resume=False, progress=False, command="demo") as run:
        _stage(run, "snn.json", "demo's", {"codes": "from the sweep"})
    with Run(tmp_path, resume=False, progress=False, command="convert") as run:
        with pytest.raises(
            UsageError, match=r"made by `scttfs demo` with other settings \(differing: codes\)"
        ):
            _stage(run, "snn.json", "convert's", {"codes": "fitted again"})
        assert _stage(run, "snn.json", "same", {"codes": "from the sweep"}) is True  # same settings: fine
    assert json.loads((tmp_path / "snn.json").read_text()) == "same"


def test_damaged_run_files_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{")
    run = Run(tmp_path, resume=True, progress=False, command="c")
    with pytest.raises(UsageError, match="config.json is not valid JSON"):
        run.store_config({"T": 3})
    (tmp_path / "state.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UsageError, match="state.pt cannot be read with torch.load"):
        run.load_torch("state.pt")
    run.close()
