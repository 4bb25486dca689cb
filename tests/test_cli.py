"""The ``scttfs`` command: help, errors, run directories, --resume, and the quick demo."""

import argparse
import contextlib
import json
import shutil

import numpy as np
import pytest
import torch

from scttfs_brian import cli
from scttfs_brian.pipeline import Run, rundir

COMMANDS = ("demo", "train", "convert", "simulate")


@contextlib.contextmanager
def at_most_2_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_hook(monkeypatch):
    monkeypatch.setattr(rundir, "STAGE_HOOK", None)
    with at_most_2_threads():
        yield
    # the commands restore the thread count they set (--threads)


def log_lines(run_dir):
    return (run_dir / "log.txt").read_text().splitlines()


# --------------------------------------------------------------------------------------------
# help and errors
# --------------------------------------------------------------------------------------------
def test_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: scttfs" in out and all(c in out for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help_exits_0(command, capsys):
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: scttfs {command}" in out and "--run-dir" in out and "--resume" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: command"),
        (["fly"], "invalid choice: 'fly'"),
        (["demo", "--T", "0"], "expected a positive integer, got 0"),
        (["demo", "--fine-tune-lr", "abc"], "expected a positive number"),
        (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["simulate", "--backend", "nest"], "invalid choice: 'nest'"),
        (["train", "--dataset", "mnist"], "invalid choice: 'mnist'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "dataset, archive", [("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")]
)
def test_missing_data_says_what_is_expected_where(dataset, archive, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--dataset", dataset, "--data-root", "/nope", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"/nope/{archive}" in err and "--data-root" in err and "Traceback" not in err
    assert not run_dir.exists()  # nothing written for a run that could not start


def test_convert_without_a_trained_ann_exits_2(tmp_path, capsys):
    assert cli.main(["convert", "--run-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no trained ANN" in err and "scttfs train" in err


@pytest.mark.parametrize(
    "error, code, message",
    [
        (cli.UsageError("no data"), 2, "scttfs demo: error: no data"),
        (cli.CheckFailed("spikes differ"), 1, "scttfs demo: check failed: spikes differ"),
        (KeyboardInterrupt(), 130, "continue with `scttfs demo --run-dir R --resume`"),
    ],
)
def test_one_function_maps_failures_to_exit_codes(error, code, message, capsys):
    args = argparse.Namespace(command="demo", run_dir="R")
    assert cli.exit_code(args, error) == code
    assert message in capsys.readouterr().err
    assert cli.exit_code(args, SystemExit(3)) is None  # not a failure: main re-raises it


# --------------------------------------------------------------------------------------------
# train -> convert -> simulate in one run directory, interrupted and resumed
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished `scttfs train` (read only: tests that write into a run use `run_copy`)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mlp"
    argv = ["train", "--model", "digits-mlp", "--epochs", "2", "--run-dir", str(run_dir), "--no-progress"]
    with at_most_2_threads():
        assert cli.main(argv) == 0
    return run_dir


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the trained run that a test may change."""
    return shutil.copytree(trained_run, tmp_path / "mlp")


def test_commands_restore_the_thread_count(trained_run):
    torch.set_num_threads(3)  # the autouse fixture restores the count of the session
    assert cli.main(["simulate", "--run-dir", str(trained_run), "--T", "7", "--threads", "1"]) == 2
    assert torch.get_num_threads() == 3


def test_train_writes_config_checkpoint_and_metrics(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["train"]["model"] == "digits-mlp" and config["train"]["epochs"] == 2
    state = torch.load(trained_run / "ann.pt", weights_only=True)
    assert set(state) == {"1.weight", "1.bias", "3.weight", "3.bias"}
    ckpt = torch.load(trained_run / "checkpoints" / "ann_train.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    assert 0.8 < json.loads((trained_run / "metrics.json").read_text())["ann_accuracy"] <= 1.0
    assert not list(trained_run.rglob(".*.tmp-*"))  # atomic writes leave no temporary files


def test_ann_training_resumes_from_the_last_epoch(trained_run, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "interrupted"
    argv = ["train", "--model", "digits-mlp", "--epochs", "2", "--run-dir", str(run_dir), "--no-progress"]
    save = Run.save_torch

    def interrupt_after_epoch_1(self, name, obj):
        save(self, name, obj)
        if name == "checkpoints/ann_train.pt" and obj["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "save_torch", interrupt_after_epoch_1)
    assert cli.main(argv) == 130
    assert "--resume" in capsys.readouterr().err
    assert not (run_dir / "ann.pt").exists()
    monkeypatch.setattr(Run, "save_torch", save)
    assert cli.main([*argv, "--resume"]) == 0
    assert any("resuming ANN training after epoch 1" in line for line in log_lines(run_dir))
    # the same weights as the uninterrupted run
    a = torch.load(run_dir / "ann.pt", weights_only=True)
    b = torch.load(trained_run / "ann.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_convert_resume_skips_finished_stages(run_copy, monkeypatch):
    trained_run = run_copy
    argv = ["convert", "--run-dir", str(trained_run), "--T", "3", "--fine-tune-epochs", "1", "--no-progress"]

    def interrupt(run, stage):
        if stage == "fine-tune sc-ttfs-T3":
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "STAGE_HOOK", interrupt)
    assert cli.main(argv) == 130
    twin = trained_run / "twin-sc-ttfs-T3.pt"
    mtime = twin.stat().st_mtime_ns
    assert not (trained_run / "snn-sc-ttfs-T3-ft.npz").exists()
    monkeypatch.setattr(rundir, "STAGE_HOOK", None)
    start = len(log_lines(trained_run))
    assert cli.main([*argv, "--resume"]) == 0
    log = "\n".join(log_lines(trained_run)[start:])
    assert "stage kernels sc-ttfs-T3: skipped" in log
    assert "stage fine-tune sc-ttfs-T3: skipped" in log
    assert "stage convert sc-ttfs-T3-ft: running" in log
    assert twin.stat().st_mtime_ns == mtime  # not redone
    snn = json.loads((trained_run / "metrics.json").read_text())["snn"]
    assert {"sc-ttfs-T3", "sc-ttfs-T3-ft"} <= set(snn)
    assert snn["sc-ttfs-T3"]["latency_steps"] == 3  # one spiking layer: one window


def test_resume_with_other_options_is_refused(run_copy, capsys):
    argv = ["convert", "--run-dir", str(run_copy), "--T", "3", "--no-progress"]
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--fine-tune-epochs", "2", "--resume"]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "brian2"])
def test_simulate_a_converted_network(run_copy, backend, capsys):
    trained_run = run_copy
    argv = ["simulate", "--run-dir", str(trained_run), "--T", "3", "--backend", backend, "--images", "12",
            "--no-progress", "--check"]  # fmt: skip
    assert cli.main(["convert", "--run-dir", str(trained_run), "--T", "3", "--no-progress"]) == 0
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    sims = json.loads((trained_run / "metrics.json").read_text())["simulations"]
    assert sims[f"sc-ttfs-T3-{backend}"]["images"] == 12
    if backend == "brian2":
        assert sims["sc-ttfs-T3-brian2"]["check"]["identical"]
        assert "agree spike for spike" in out
    assert (trained_run / "figures" / f"raster-sc-ttfs-T3-{backend}.png").stat().st_size > 0


def test_simulate_on_a_local_dask_cluster_agrees_spike_for_spike(run_copy, capsys):
    """``--workers 2``: the Brian2 run sharded over a 2-process LocalCluster, checked against the
    torch engine spike for spike (``--check``)."""
    argv = ["simulate", "--run-dir", str(run_copy), "--T", "3", "--backend", "brian2", "--images", "12",
            "--no-progress", "--check", "--workers", "2"]  # fmt: skip
    assert cli.main(["convert", "--run-dir", str(run_copy), "--T", "3", "--no-progress"]) == 0
    assert cli.main(argv) == 0
    assert "agree spike for spike" in capsys.readouterr().out
    sims = json.loads((run_copy / "metrics.json").read_text())["simulations"]
    assert sims["sc-ttfs-T3-brian2"]["check"]["identical"]


def test_simulate_names_the_missing_network(trained_run, capsys):
    assert cli.main(["simulate", "--run-dir", str(trained_run), "--T", "7"]) == 2
    err = capsys.readouterr().err
    assert "snn-sc-ttfs-T7.npz does not exist" in err and "scttfs convert" in err


# --------------------------------------------------------------------------------------------
# the demo
# --------------------------------------------------------------------------------------------
def test_quick_demo_end_to_end_and_resume(tmp_path, capsys):
    run_dir = tmp_path / "demo"
    argv = ["demo", "--quick", "--run-dir", str(run_dir), "--no-progress", "--images", "12", "--sweep", "3",
            "--study-results", str(tmp_path / "no_study.json")]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "agree spike for spike" in out
    assert "| network | engine | agreement (%) | mean abs output diff | lossless | accuracy (%) |" in out
    assert f"Study comparison: no study file at {tmp_path / 'no_study.json'}" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("ann_accuracy", "agreement", "mean_abs_output_diff", "snn_accuracy", "latency_steps",
                "spikes_per_image", "energy", "brian2", "study"):  # fmt: skip
        assert key in metrics
    labels = {"sc-ttfs", "sc-ttfs+bc", "sc-ttfs+ft", "ttfs", "ttfs+bc", "ttfs+ft"}
    assert set(metrics["snn_accuracy"]) == set(metrics["agreement"]) == labels
    assert metrics["brian2"]["check"]["identical"]
    # the Brian2 row's agreement is Brian2's outputs against the ANN's, on the 12 test images
    assert metrics["agreement"]["sc-ttfs+ft"] == metrics["brian2"]["agreement"]
    assert metrics["agreement"]["sc-ttfs+ft"] == metrics["sweep"]["fine-tuned"]["sc-ttfs"]["3"]["agreement"]
    for label, a in metrics["agreement"].items():
        assert 12 * a == pytest.approx(round(12 * a)) and metrics["mean_abs_output_diff"][label] >= 0
        # lossless is defined on agreement, not on accuracy
        assert metrics["lossless"][label] is (a >= 0.995)
    assert metrics["lossless"]["criterion"].startswith("agreement with the ANN >= 99.5 %")
    assert metrics["study"]["found"] is False and metrics["study"]["cells"] == []
    # fine-tuned as the study does: distillation with a validation split, starting point recorded
    tuned = metrics["sweep"]["fine-tuned"]["ttfs"]["3"]
    assert tuned["start"] == "bias-corrected" and 0 <= tuned["selected_epoch"] <= 1
    assert metrics["fine_tuning"]["validation"] == 0.2 and metrics["fine_tuning"]["windows"]["sc-ttfs"] == [3]
    T = metrics["T"]
    assert metrics["latency_steps"]["sc-ttfs+ft"] == 3 * T  # three spiking layers
    assert np.isfinite(metrics["energy"]["raw"]["truenorth"]["ttfs"])
    for fig in ("accuracy_vs_T.png", "raster.png"):
        assert (run_dir / "figures" / fig).stat().st_size > 0
    text = (run_dir / "report.md").read_text()
    a = 100 * metrics["agreement"]["sc-ttfs+ft"]
    assert f"| SC-TTFS T={T}, fine-tuned | Brian2 (= torch twin) | {a:.2f} |" in text
    assert "## Against the multi-seed study\n\nStudy comparison: no study file at" in text
    # everything is there: --resume redoes nothing
    start = len(log_lines(run_dir))
    assert cli.main([*argv, "--resume"]) == 0
    new = log_lines(run_dir)[start:]
    assert not any(": running" in line for line in new)
    assert any("stage ann: skipped" in line for line in new)
    # another command never overwrites the demo's network made with other settings
    T = str(metrics["T"])
    snn = run_dir / f"snn-sc-ttfs-T{T}.npz"
    before = snn.read_bytes()
    assert cli.main(["convert", "--run-dir", str(run_dir), "--T", T, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"snn-sc-ttfs-T{T}.npz was made by `scttfs demo` with other settings" in err and "--run-dir" in err
    assert snn.read_bytes() == before
    # but simulating the demo's networks in its directory works
    argv = ["simulate", "--run-dir", str(run_dir), "--T", T, "--fine-tuned", "--backend", "torch",
            "--images", "12", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0


# --------------------------------------------------------------------------------------------
# Ctrl-C during a Brian2 run
# --------------------------------------------------------------------------------------------
def test_ctrl_c_during_the_brian2_simulation_exits_130_without_a_traceback(run_copy, tmp_path):
    """Brian2's own handler would stop the run early and return partial results (exit 0), or wrap
    the interrupt ("Brian 2 encountered an unexpected error"); the command must exit 130 and write
    no result."""
    import os
    import signal
    import subprocess
    import sys
    import time

    assert cli.main(["convert", "--run-dir", str(run_copy), "--T", "3", "--no-progress"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}  # the progress bar says when it runs
    err_path = tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "scttfs_brian.cli", "simulate", "--run-dir", str(run_copy), "--T", "3",
            "--backend", "brian2", "--copies", "1"]  # fmt: skip
    with open(err_path, "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.time() + 300
        while "Brian2 numpy" not in err_path.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        # the bar appears before the build; the build, the run (~0.3 s) and the writing of the
        # result and figure follow: a signal now lands inside the command
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=300)
    stderr = err_path.read_text()
    assert code == 130, stderr
    assert "interrupted; continue with `scttfs simulate --run-dir" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr and "Brian 2 encountered" not in stderr
    assert not list(run_copy.glob("sim-brian2-*.npz"))  # no partial result


def test_ctrl_c_inside_network_run_is_not_swallowed_by_brian2(run_copy, monkeypatch, capsys):
    """Ctrl-C while ``Network.run`` is running: Brian2's handler, by default, turns it into "stop
    after this step" and the run returns early; the command must raise the interrupt instead."""
    import os
    import signal
    import time

    import brian2 as b2

    assert cli.main(["convert", "--run-dir", str(run_copy), "--T", "3", "--no-progress"]) == 0
    original = b2.Network.run

    def run_with_ctrl_c(self, *args, **kwargs):
        b2.Network._globally_running = True  # what run() sets while it runs
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here
        finally:
            b2.Network._globally_running = False
        return original(self, *args, **kwargs)

    monkeypatch.setattr(b2.Network, "run", run_with_ctrl_c)
    argv = ["simulate", "--run-dir", str(run_copy), "--T", "3", "--images", "6", "--no-progress"]
    assert cli.main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not list(run_copy.glob("sim-brian2-*.npz"))
    assert b2.prefs.core.stop_on_keyboard_interrupt  # Brian2's preference restored
