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
from scttfs_brian.pipeline.errors import StaleArtifact
from scttfs_brian.results import SimulationResult


# --------------------------------------------------------------------------------------------
# DemoConfig
# --------------------------------------------------------------------------------------------
def test_demo_config_windows_always_include_T():
    config = DemoConfig(T=5, sweep=[8, 2, 4, 2], fine_tune_sweep=[4])
    assert config.sweep == [2, 4, 5, 8]
    assert config.fine_tune_sweep == {"sc-ttfs": [4, 5], "ttfs": [4, 5]}
    assert DemoConfig().fine_tune_sweep == {"sc-ttfs": [2, 3, 4], "ttfs": [2, 3, 4, 6, 8]}


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
    assert DemoConfig.create(sweep=[2, 6]).fine_tune_sweep == {"sc-ttfs": [2, 3], "ttfs": [2, 3, 6]}


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
        {"label": "ann", "network": "ANN", "engine": "torch", "accuracy": 0.9, "latency_steps": None,
         "spikes_per_image": None},
        {"label": "a", "network": "A", "engine": "torch twin", "accuracy": 0.88, "latency_steps": 9,
         "spikes_per_image": 100.0},
        {"label": "b", "network": "B", "engine": "Brian2", "accuracy": 0.9, "latency_steps": 18,
         "spikes_per_image": 50.0},
    ]  # fmt: skip
    energy = report.energy_estimates(
        {r["label"]: (r["spikes_per_image"], r["latency_steps"]) for r in rows[1:]}
    )
    assert energy["raw"]["truenorth"]["a"] == pytest.approx(100 * 0.4 + 9 * 0.6)
    assert energy["normalized"]["truenorth"]["a"] == pytest.approx(0.4 * 1 + 0.6 * 0.5)
    table = report.markdown_table(rows, energy).splitlines()
    assert table[2] == "| ANN | torch | 90.00 |  |  |  |  |  |"
    assert table[3] == "| A | torch twin | 88.00 | -2.00 | 9 | 100 | 0.700 | 0.820 |"
    sweep = {"sc-ttfs": {"2": {"accuracy": 0.5, "latency_steps": 6}}, "ttfs": {}}
    tuned = {"sc-ttfs": {}, "ttfs": {"2": {"accuracy": 0.25, "latency_steps": 6}}}
    assert report.sweep_table(sweep, tuned, 0.9).splitlines()[2] == "| 2 | 6 | 50.00 |  |  | 25.00 | |"
    assert "TrueNorth (E_i, E_l) = (0.4, 0.6)" in report.energy_note(energy)


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
