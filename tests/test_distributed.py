"""Brian2 runs and grid points on a Dask cluster (a 2-process LocalCluster): the sharded run
equals the single-process run spike for spike, a killed worker loses nothing, a failing shard
ends the run with its own error."""

import argparse
import functools
import os
import signal
import sys
import time

import cloudpickle
import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster
from torch import nn

from scttfs_brian import convert
from scttfs_brian.brian.distributed import (
    MALLOC_TRIM_VARIABLE,
    graph_from_bytes,
    graph_key,
    graph_to_bytes,
    merge_results,
    run_shard,
    shard_bounds,
    simulate_distributed,
)
from scttfs_brian.pipeline.cluster import add_cluster_arguments, client_from_options, map_grid

# the shard and grid functions below travel to the worker processes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each; not the default client, so that code which looks
    for one (map_grid without a client) finds none."""
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        CLIENT_SETTINGS.update(c.run(_worker_settings))
        yield c


#: What the workers of the plain LocalCluster above run with (Dask's defaults).
CLIENT_SETTINGS: dict = {}


def _inputs(n, seed):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@functools.cache
def _snn(name):
    torch.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(24, 10),
        )  # fmt: skip
    return convert(model, (1, 8, 8), code="auto", calibration_data=_inputs(32, 1), T=3)


def assert_same_result(a, b):
    """Every field of two results equal, exactly."""
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.latency_steps == b.latency_steps and a.backend == b.backend
    assert set(a.spike_counts) == set(b.spike_counts) and set(a.spike_times) == set(b.spike_times)
    agreement = a.compare(b)  # every spike count and spike time, spike for spike
    assert agreement.exact, str(agreement)


# -- pieces without a cluster ---------------------------------------------------------------------
def test_shards_cover_the_inputs_in_order():
    assert shard_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(3, 5) == [(0, 3)]
    with pytest.raises(ValueError, match="shard_size must be a positive integer"):
        shard_bounds(10, 0)


def test_graph_travels_as_npz_bytes_and_is_named_by_its_content():
    graph = _snn("mlp").graph
    data = graph_to_bytes(graph)
    again = graph_from_bytes(data)
    assert graph_key(graph_to_bytes(again)) == graph_key(data)
    for a, b in zip(graph.layers, again.layers):
        np.testing.assert_array_equal(a.bias, b.bias)
    assert graph_key(graph_to_bytes(_snn("cnn").graph)) != graph_key(data)


def test_merged_shards_equal_one_run_in_process():
    """The merge alone (shards run here, no Dask): the concatenation is the one-run result."""
    snn, x = _snn("cnn"), _inputs(7, 2)
    one = snn.simulate(x, backend="brian2", record=True, progress=False)
    from scttfs_brian.brian.distributed import ShardJob

    job = ShardJob("numpy", record=True)
    parts = [run_shard(snn.graph, x[s:e].numpy(), job) for s, e in shard_bounds(7, 3)]
    merged = merge_results(parts)
    assert_same_result(merged, one)
    assert merged.timings["run"] == pytest.approx(sum(p.timings["run"] for p in parts))
    assert merged.memory["worker_peak_rss_bytes"] == max(p.memory["worker_peak_rss_bytes"] for p in parts)
    with pytest.raises(ValueError, match="at least one shard"):
        merge_results([])


def test_distributed_options_are_checked_before_any_work():
    graph, x = _snn("mlp").graph, _inputs(2, 0)
    nowhere = object()  # never reached: the options are refused first
    with pytest.raises(ValueError, match="compile must be 'worker' or 'shared'"):
        simulate_distributed(graph, x, client=nowhere, compile="everywhere")
    with pytest.raises(ValueError, match="compile='shared' shares a cpp_standalone build"):
        simulate_distributed(graph, x, client=nowhere, compile="shared")
    with pytest.raises(ValueError, match="target must be one of"):
        simulate_distributed(graph, x, client=nowhere, target="fpga")
    with pytest.raises(ValueError, match="x holds no inputs"):
        simulate_distributed(graph, x[:0], client=nowhere)


# -- on the cluster ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_distributed_run_equals_single_process_spike_for_spike(client, name):
    snn, x = _snn(name), _inputs(11, 3)
    one = snn.simulate(x, backend="brian2", record=True, progress=False)
    # uneven shards (4, 4, 3) over the two workers; every field, every spike time equal
    sharded = snn.simulate(x, backend="brian2", distributed=client, record=True, shard_size=4, progress=False)
    assert_same_result(sharded, one)
    assert sharded.timings["wall"] > 0 and sharded.memory["worker_peak_rss_bytes"] > 0
    # the default shard size: one shard per worker; a record of selected neurons
    sel = {snn.graph.layers[0].name: [0, 5]}
    one_sel = snn.simulate(x[:5], backend="brian2", record=sel, progress=False)
    assert_same_result(snn.simulate(x[:5], distributed=client, record=sel, progress=False), one_sel)


def test_distributed_needs_the_brian2_backend(client):
    with pytest.raises(ValueError, match="distributed runs are Brian2 runs"):
        _snn("mlp").simulate(_inputs(2, 0), backend="torch", distributed=client)


def kill_first_attempt(graph, x, job, marker):
    """A shard function whose first call kills its own worker process (SIGKILL, as an
    out-of-memory kill would) before simulating: Dask must recompute the shard elsewhere."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return run_shard(graph, x, job)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def test_worker_killed_mid_shard_loses_nothing(client, tmp_path):
    snn, x = _snn("mlp"), _inputs(8, 4)
    one = snn.simulate(x, backend="brian2", progress=False)
    marker = str(tmp_path / "killed")
    pids = set(client.run(os.getpid).values())
    fn = functools.partial(kill_first_attempt, marker=marker)
    sharded = snn.simulate(x, distributed=client, shard_size=4, shard_function=fn, progress=False)
    assert_same_result(sharded, one)
    with open(marker) as f:
        killed = int(f.read())
    assert killed in pids  # a worker process of the cluster died ...
    client.wait_for_workers(2, timeout=60)  # ... and its nanny started a new one
    assert killed not in set(client.run(os.getpid).values())


def test_failing_shard_ends_the_run_with_its_own_error(client):
    snn, x = _snn("mlp"), _inputs(9, 5).numpy()
    x[7, 0, 2, 3] = np.nan  # in the last of three shards
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="x must be finite"):
        snn.simulate(x, distributed=client, shard_size=3, progress=False)
    assert time.perf_counter() - t0 < 60  # an answer, not a hang
    # the cluster still works afterwards
    assert_same_result(
        snn.simulate(x[:3], distributed=client, progress=False), snn.simulate(x[:3], progress=False)
    )


# -- grid points --------------------------------------------------------------------------------------
def square_point(point):
    return {"T": point["T"], "value": point["T"] ** 2, "pid": os.getpid()}


def square_or_die(point, marker):
    """Kills its worker process the first time point T=2 runs."""
    if point["T"] == 2:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            os.kill(os.getpid(), signal.SIGKILL)
        except FileExistsError:
            pass
    return square_point(point)


def refuse_odd(point):
    if point["T"] % 2:
        raise ValueError(f"T={point['T']} is odd")
    return point["T"]


def test_map_grid_returns_results_in_order_on_the_cluster_and_locally(client):
    points = [{"T": t} for t in (5, 1, 4, 2, 3, 6)]
    on_cluster = map_grid(square_point, points, client, progress=False)
    assert [r["value"] for r in on_cluster] == [25, 1, 16, 4, 9, 36]
    assert {r["pid"] for r in on_cluster} <= set(client.run(os.getpid).values())
    here = map_grid(square_point, points, progress=False)  # no client: this process
    assert [r["value"] for r in here] == [25, 1, 16, 4, 9, 36] and {r["pid"] for r in here} == {os.getpid()}


def test_map_grid_survives_a_killed_worker_and_reports_a_failing_point(client, tmp_path):
    points = [{"T": t} for t in (1, 2, 3, 4)]
    fn = functools.partial(square_or_die, marker=str(tmp_path / "killed"))
    assert [r["value"] for r in map_grid(fn, points, client, progress=False)] == [1, 4, 9, 16]
    assert (tmp_path / "killed").exists()
    client.wait_for_workers(2, timeout=60)
    with pytest.raises(ValueError, match="T=1 is odd|T=3 is odd"):
        map_grid(refuse_odd, points, client, progress=False)


def simulate_in_a_task(point):
    """A grid point that itself shards a Brian2 run over the cluster it runs on."""
    from scttfs_brian import SpikingNetwork

    return SpikingNetwork(point["graph"]).simulate(point["x"], distributed=True, shard_size=2, progress=False)


def test_a_grid_point_can_shard_its_own_run_over_the_cluster(client):
    """Inside a task, distributed=True finds the worker's client and leaves the worker's thread
    pool while it waits (no deadlock on single-threaded workers)."""
    snn, x = _snn("mlp"), _inputs(5, 7).numpy()
    (inner,) = map_grid(simulate_in_a_task, [{"graph": snn.graph, "x": x}], client, progress=False)
    assert_same_result(inner, snn.simulate(x, progress=False))


def test_cluster_options():
    with client_from_options() as c:
        assert c is None
    with pytest.raises(ValueError, match="not both"):
        with client_from_options("tcp://127.0.0.1:8786", 2):
            pass
    with pytest.raises(ValueError, match="--workers must be a positive integer"):
        with client_from_options(workers=0):
            pass
    parser = argparse.ArgumentParser()
    add_cluster_arguments(parser)
    args = parser.parse_args(["--workers", "3"])
    assert (args.scheduler, args.workers) == (None, 3)
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "3", "--scheduler", "tcp://h:8786"])


def _worker_settings():
    import dask

    return os.environ.get(MALLOC_TRIM_VARIABLE), dask.config.get("distributed.worker.profile.enabled")


def test_local_cluster_from_options(client):
    """--workers N: a LocalCluster whose workers keep glibc's memory settings and run without
    Dask's statistical profiler (both cost the simulations time: see local_cluster)."""
    with client_from_options(workers=1) as c:
        assert len(c.scheduler_info()["workers"]) == 1
        assert c.submit(square_point, {"T": 3}).result()["value"] == 9
        assert list(c.run(_worker_settings).values()) == [(None, False)]
    # Dask's own defaults, which the workers started by hand get (docs/cluster.md changes them)
    assert set(CLIENT_SETTINGS.values()) == {("65536", True)}


# -- cpp_standalone -----------------------------------------------------------------------------------
@functools.cache
def _standalone_reference():
    """One single-process cpp_standalone run (code generation, compilation, run), for both tests."""
    x = _inputs(10, 6)
    return x, _snn("cnn").simulate(x, backend="brian2", target="cpp_standalone", record=True, progress=False)


@pytest.mark.slow
@pytest.mark.standalone
@pytest.mark.parametrize("compile", ["worker", "shared"])
def test_cpp_standalone_distributed_equals_single_process(client, compile):
    """Each worker compiles once (or copies the one shared build) and runs its shards through
    that program; the merged result equals one single-process cpp_standalone run."""
    snn, (x, one) = _snn("cnn"), _standalone_reference()
    kw = dict(distributed=client, target="cpp_standalone", record=True, compile=compile, progress=False)
    first = snn.simulate(x, shard_size=3, **kw)  # 4 shards on 2 workers: programs reused
    assert_same_result(first, one)
    if compile == "worker":
        assert first.timings["compile"] > 0
        again = snn.simulate(x, shard_size=3, **kw)  # same graph and options: no compilation now
        assert_same_result(again, one)
        assert "compile" not in again.timings
    else:
        assert first.timings["copy"] > 0 and first.timings["compile"] > 0  # compiled once, here
