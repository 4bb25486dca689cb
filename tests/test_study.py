"""The multi-seed study (scttfs_brian.pipeline.study) on a tiny configuration: what it writes,
that an interrupted study resumes to the same JSON, that a 2-process Dask cluster writes the
numbers this process writes (a worker killed on the way), that a failing task ends the study
with its reason, and the summary's statistics."""

import json
import os
import signal
import time

import numpy as np
import pytest
from distributed import Client

from scttfs_brian import cli
from scttfs_brian.pipeline.cluster import Task, local_cluster, run_tasks
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

    finished_tasks = []

    def stop(what):
        finished_tasks.append(what)
        if len(finished_tasks) == 3:  # the ANN of seed 0, then its two SC-TTFS points from activations
            raise KeyboardInterrupt(what)

    with pytest.raises(KeyboardInterrupt):
        run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND, on_point=stop)
    partial = json.loads(out.read_text())
    assert finished_tasks[0] == "seed 0 ANN" and len(partial["runs"]) == 2
    resumed = run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND)
    assert without_timings(resumed) == without_timings(study)

    # interrupted inside a fine-tuning sweep: the last window is redone from the saved one before it
    for name in ("seed1-ttfs-fine-tuned-T3.json", "seed1-ttfs-bias-corrected-T3.json"):
        (work / "points" / name).unlink()
    (work / "states" / "seed1-ttfs-T3.pt").unlink()
    out.unlink()
    again = run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND)
    assert without_timings(again) == without_timings(study)

    # a bias-corrected point of a finished sweep window is recomputed as a conversion task of
    # its own, and equals the one the sweep wrote (its start candidate)
    point = work / "points" / "seed0-sc-ttfs-bias-corrected-T2.json"
    written_by_sweep = json.loads(point.read_text())
    point.unlink()
    out.unlink()
    finished_tasks.clear()
    third = run_study(TINY, out, progress=False, workers=1, work_dir=work, command=COMMAND, on_point=stop)
    assert finished_tasks == ["seed 0 sc-ttfs bias-corrected T=2"]
    assert json.loads(point.read_text()) == written_by_sweep
    assert without_timings(third) == without_timings(study)


def test_a_study_without_fine_tuning_computes_its_bias_corrected_points_as_tasks(finished, tmp_path):
    """Without fine-tuning there is no sweep to write the bias-corrected points: each is a task of
    its own, and equals the one the sweep wrote in the full study (same ANN, same network)."""
    _, study = finished
    config = StudyConfig(
        **{**TINY.__dict__, "seeds": (0,), "windows": (2,), "fine_tuned": (False,), "brian_images": 0}
    )
    done = []
    run = run_study(
        config, tmp_path / "s.json", progress=False, workers=1, work_dir=tmp_path / "w", command=COMMAND,
        on_point=done.append,
    )  # fmt: skip
    assert "seed 0 sc-ttfs bias-corrected T=2" in done and "seed 0 ttfs bias-corrected T=2" in done
    assert {(r["code"], r["method"]) for r in run["runs"]} == {
        (c, m) for c in TINY.codes for m in ("activations", "bias-corrected")
    }
    assert run["runs"] == [r for r in at_T2_of_seed0(study) if r["method"] != "fine-tuned"]


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
    assert (seen["workers"], seen["client"]) == (2, None)  # a LocalCluster of 2, made by run_study
    assert main(["--out", str(tmp_path / "s.json"), "--workers", "1"]) == 0
    assert (seen["workers"], seen["client"]) == (1, None)  # in this process
    with pytest.raises(SystemExit):
        main(["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"])


@pytest.mark.parametrize("command", ["study", "simulate"])
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_worker_count_is_a_usage_error(command, value, capsys):
    """--workers must be a positive integer: refused by the parser (exit code 2, one message)."""
    assert cli.main([command, "--workers", value]) == 2
    err = capsys.readouterr().err
    assert f"argument --workers: expected a positive number of worker processes, got {value}" in err.replace(
        "'", ""
    )


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


def test_tasks_run_after_what_they_name():
    done = []
    tasks = [
        Task("a", pow, (2, 3)),
        Task("b", pow, (3, 2), after=("a",)),
        Task("c", abs, (-1,), after=("a", "b")),
    ]
    assert run_tasks(tasks, on_done=lambda t, r: done.append((t.name, r))) == {"a": 8, "b": 9, "c": 1}
    assert done == [("a", 8), ("b", 9), ("c", 1)]  # without a client: here, in their order
    with pytest.raises(ValueError, match="'b' runs after \\['c'\\], which are not listed before it"):
        run_tasks([Task("b", abs, (1,), after=("c",)), Task("c", abs, (1,))])
    with pytest.raises(ValueError, match="unique"):
        run_tasks([Task("a", abs, (1,)), Task("a", abs, (2,))])


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread; not the default client (the study gets it passed)."""
    with local_cluster(2) as cluster, Client(cluster, set_as_default=False) as c:
        yield c


def at_T2_of_seed0(study):
    return [r for r in study["runs"] if (r["seed"], r["T"]) == (0, 2)]


def test_a_dask_cluster_writes_the_numbers_of_one_process(finished, client, tmp_path):
    """Seed 0 at T = 2 on 2 worker processes: the ANN, two conversions from activations, two
    fine-tuning sweeps (each writes its bias-corrected point too) and a Brian2 check as Dask tasks. The runs are those of the in-process study (T = 2 is the
    first window of its sweeps, so the same networks), number for number."""
    _, study = finished
    config = StudyConfig(**{**TINY.__dict__, "seeds": (0,), "windows": (2,), "brian_images": 2})
    done = []
    two = run_study(
        config, tmp_path / "s.json", progress=False, client=client, work_dir=tmp_path / "w", command=COMMAND,
        on_point=done.append,
    )  # fmt: skip
    assert done[0] == "seed 0 ANN" and len(done) == 6
    assert two["runs"] == at_T2_of_seed0(study) and len(two["runs"]) == 6
    (check,) = two["brian_checks"]
    assert check["identical"] and (check["code"], check["method"], check["T"], check["inputs"]) == (
        "sc-ttfs", "fine-tuned", 2, 2,
    )  # fmt: skip
    invocation = two["timings"]["invocations"][-1]
    assert invocation["workers"] == 2 and invocation["scheduler"] == client.scheduler.address


@pytest.mark.slow
def test_a_worker_killed_during_the_study_loses_nothing(finished, client, tmp_path):
    """One of the 2 workers is killed (SIGKILL, as an out-of-memory kill would) once the ANN is
    trained, while the tasks it unblocked run: Dask recomputes the lost tasks on the other
    worker and on the one its nanny starts, and the runs are still those of one process."""
    _, study = finished
    config = StudyConfig(**{**TINY.__dict__, "seeds": (0,), "windows": (2,), "brian_images": 0})
    client.wait_for_workers(2, timeout=60)
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_a_worker(what):
        if not killed:
            time.sleep(0.5)  # the workers start the tasks that the ANN unblocked
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    run = run_study(
        config, tmp_path / "s.json", progress=False, client=client, work_dir=tmp_path / "w", command=COMMAND,
        on_point=kill_a_worker,
    )  # fmt: skip
    assert killed and killed[0] not in set(client.run(os.getpid).values())
    assert run["runs"] == at_T2_of_seed0(study)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.parametrize("where", ["in-process", "cluster"])
def test_a_failing_task_ends_the_study_with_its_reason(where, client, tmp_path, capsys):
    """A corrupt ANN checkpoint in the work directory: every task of the seed fails reading it;
    the command ends at once with that reason on one line (exit code 1), on the cluster too."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "ann-seed0.pt").write_bytes(b"not a checkpoint")
    cluster = ["--workers", "1"] if where == "in-process" else ["--scheduler", client.scheduler.address]
    argv = ["study", "--out", str(tmp_path / "s.json"), "--work-dir", str(work), "--seeds", "0"]
    argv += ["--windows", "2", "--no-fine-tuning", "--brian-images", "0", "--no-progress", *cluster]
    t0 = time.perf_counter()
    assert cli.main(argv) == 1
    assert time.perf_counter() - t0 < 60
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scttfs study: error:") and "ann-seed0.pt" in err[0], err
