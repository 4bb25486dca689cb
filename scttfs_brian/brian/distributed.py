"""Brian2 runs sharded over the workers of a Dask cluster, merged into one result.

Inputs are independent in the Brian2 engine (each one runs in its own network copy, SPEC
section 2), so a batch of ``N`` inputs split into contiguous shards, simulated anywhere and
concatenated back in order gives the result of one single-process run, spike for spike:
:func:`simulate_distributed` does that with `Dask <https://distributed.dask.org>`_ and is what
``snn.simulate(x, backend="brian2", distributed=True)`` calls.

How the work travels
--------------------
* The graph goes to the cluster once, as data: its ``.npz`` bytes (:meth:`.Graph.save`, no
  pickle) in one task that loads it on a worker; the loaded graph is copied to every worker
  before the shards start (a busy worker serves copies slowly), and the shard tasks depend on
  that task, so Dask recomputes it if every worker holding it dies.
* Each shard task carries its own inputs, so a shard whose worker dies mid-run is recomputed
  from what the scheduler holds (Dask reschedules the tasks of a lost worker; a task that kills
  ``distributed.scheduler.allowed-failures`` + 1 workers in a row is given up as
  ``KilledWorker``). A shard that raises (a bad input, a build refused for memory) ends the run
  with that exception, its type and message unchanged, and the other shards are cancelled.
* Brian2 keeps global state (device, preferences), so a worker process runs one Brian2 shard at
  a time whatever its number of threads; start workers with ``--nthreads 1`` and one worker
  process per core.

Standalone targets
------------------
For ``cpp_standalone`` a shard does not generate and compile its own program: with
``compile="worker"`` (default) each worker compiles the network once with
:func:`~scttfs_brian.brian.compile_program` (for batches of one shard) in its Dask scratch
directory and runs every shard it gets through that program (no recompilation; the program is
kept for later calls on the same cluster with the same graph and options). With
``compile="shared"`` the client compiles once, in ``program_dir`` (which must be visible to
every worker: a shared file system, or the local disk for a ``LocalCluster``), and each worker
copies the build once into its scratch directory and runs it there. ``cuda_standalone`` shards
are simulated one build each (:func:`~scttfs_brian.brian.simulate`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from distributed import WorkerPlugin

from ..graph import Graph
from ..results import SimulationResult

__all__ = [
    "simulate_distributed",
    "local_cluster",
    "MALLOC_TRIM_VARIABLE",
    "WORKER_CONFIG",
    "run_shard",
    "ShardJob",
    "merge_results",
    "shard_bounds",
    "graph_to_bytes",
    "graph_from_bytes",
    "graph_key",
    "release_programs",
    "import_brian2",
    "process_peak_rss_bytes",
    "BrianWorkerSetup",
    "prepare_workers",
    "gather_in_order",
    "raise_task_error",
    "cluster_client",
]

#: One Brian2 run at a time per worker process: Brian2's device and preferences are global.
BRIAN_LOCK = threading.Lock()
#: Compiled programs of this (worker) process, by :attr:`ShardJob.program_key`.
_PROGRAMS: dict = {}
#: How long to wait for the first worker of a cluster before giving up (seconds).
WORKER_WAIT_S = 120


# --------------------------------------------------------------------------------------------
# The graph as data
# --------------------------------------------------------------------------------------------
def graph_to_bytes(graph: Graph) -> bytes:
    """The graph's ``.npz`` file (:meth:`.Graph.save`: arrays plus JSON, no pickle) as bytes."""
    buf = io.BytesIO()
    graph.save(buf)
    return buf.getvalue()


def graph_from_bytes(data: bytes) -> Graph:
    """The graph written by :func:`graph_to_bytes`."""
    return Graph.load(io.BytesIO(data))


def graph_key(data: bytes) -> str:
    """A name for the graph in ``data`` (:func:`graph_to_bytes`) that depends on its arrays and
    description only (the ``.npz`` archive itself holds write times)."""
    h = hashlib.sha256()
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        for name in sorted(f.files):
            arr = f[name]
            h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:24]


# --------------------------------------------------------------------------------------------
# Shards and their merge
# --------------------------------------------------------------------------------------------
def shard_bounds(n_inputs: int, shard_size: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` slices of ``n_inputs`` inputs, ``shard_size`` each (the last
    one may be shorter)."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer (got {shard_size!r})")
    return [(s, min(n_inputs, s + int(shard_size))) for s in range(0, n_inputs, int(shard_size))]


def merge_results(parts: list[SimulationResult]) -> SimulationResult:
    """One result from the results of consecutive shards, in order: the arrays of every field
    concatenated along the inputs (``predictions`` included, so they are those of one run),
    ``timings`` summed phase by phase (worker-seconds: shards ran in parallel), ``memory`` the
    largest value of each entry (a peak over the processes)."""
    if not parts:
        raise ValueError("merge_results needs at least one shard result")
    first = parts[0]
    for p in parts[1:]:
        if set(p.spike_counts) != set(first.spike_counts) or set(p.spike_times) != set(first.spike_times):
            raise ValueError("the shard results count or record different populations; run every shard alike")
    outputs = np.concatenate([p.outputs for p in parts])
    timings: dict = {}
    memory: dict = {}
    for p in parts:
        for k, v in p.timings.items():
            timings[k] = timings.get(k, 0.0) + float(v)
        for k, v in p.memory.items():
            memory[k] = max(memory.get(k, 0), int(v))
    return SimulationResult(
        outputs=outputs,
        predictions=np.concatenate([p.predictions for p in parts]),
        spike_counts={k: np.concatenate([p.spike_counts[k] for p in parts]) for k in first.spike_counts},
        latency_steps=first.latency_steps,
        spike_times={
            k: tuple(np.concatenate([p.spike_times[k][j] for p in parts]) for j in range(2))
            for k in first.spike_times
        },
        backend=first.backend,
        timings=timings,
        memory=memory,
    )


# --------------------------------------------------------------------------------------------
# What a worker runs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardJob:
    """What every shard task of one run needs besides its graph and inputs.

    Attributes
    ----------
    target : str
        The Brian2 target.
    options : dict
        Keywords of :func:`~scttfs_brian.brian.simulate` (runtime targets, ``cuda_standalone``)
        or of :func:`~scttfs_brian.brian.compile_program` (``cpp_standalone``).
    record : Any
        Populations whose spike times are returned (as in ``simulate``).
    batch_size : int
        The largest shard: the batch size of a compiled program.
    program_key : str
        Names a compiled program (graph and build options) in a worker's cache.
    program_dir : str or None
        The shared build (``compile="shared"``), which each worker copies once.
    program : StandaloneProgram or None
        The shared build's program object, without its graph (the worker has the graph).
    """

    target: str
    options: dict = field(default_factory=dict)
    record: Any = ()
    batch_size: int = 1
    program_key: str = ""
    program_dir: str | None = None
    program: Any = None


def import_brian2() -> None:
    """Import Brian2 in this process, from any thread.

    Brian2's import installs a SIGINT handler (so that Ctrl-C stops a run), which Python allows
    in the main thread only, while Dask runs tasks in a worker's thread pool: the workers import
    Brian2 when they start (:class:`BrianWorkerSetup`, in the main thread). Where that could not
    happen (a worker thread importing it first), the handler is left out, nothing else."""
    if "brian2" in sys.modules:
        return
    if threading.current_thread() is threading.main_thread():
        import brian2  # noqa: F401

        return
    import signal

    install = signal.signal
    signal.signal = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        import brian2  # noqa: F401
    finally:
        signal.signal = install


class BrianWorkerSetup(WorkerPlugin):
    """Imports Brian2 when a Dask worker starts (restarted workers included), in the worker's
    main thread (see :func:`import_brian2`)."""

    name = "scttfs-brian2"

    def setup(self, worker: Any) -> None:
        import_brian2()


def prepare_workers(client: Any) -> None:
    """Register :class:`BrianWorkerSetup` on ``client``'s cluster (every worker, now and later)."""
    client.register_plugin(BrianWorkerSetup())


def process_peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started, in bytes.

    Linux: ``VmHWM`` of ``/proc/self/status``. Not ``ru_maxrss``: Linux carries a parent's peak
    into a child through fork + exec, so every worker process spawned by a big client process
    would report at least the client's peak. Elsewhere ``ru_maxrss`` (with that caveat)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _scratch_dir() -> str:
    """The Dask worker's scratch directory (deleted with the worker), else a temporary one."""
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError):
        return tempfile.gettempdir()


def _program(graph: Graph, job: ShardJob) -> tuple[Any, dict]:
    """This process's compiled program for ``job``, compiled (or, for a shared build, copied)
    now if it has none; returns it and the timings spent getting it (empty when cached)."""
    prog = _PROGRAMS.get(job.program_key)
    if prog is not None and prog.directory is not None:
        return prog, {}
    from . import compile_program

    where = os.path.join(_scratch_dir(), f"scttfs-program-{job.program_key}-{uuid.uuid4().hex[:6]}")
    t0 = time.perf_counter()
    if job.program is not None:
        # the program reads its inputs from and writes its results into its directory: each
        # worker runs its own copy (sources and object files are not needed to run it)
        shutil.copytree(
            job.program_dir, where, ignore=shutil.ignore_patterns("*.o", "*.cpp", "*.h", "results")
        )
        os.makedirs(os.path.join(where, "results"), exist_ok=True)
        prog = copy.copy(job.program)
        prog.graph, prog.directory = graph, where
        timings = {"copy": time.perf_counter() - t0}
    else:
        prog = compile_program(graph, job.batch_size, directory=where, **job.options)
        timings = dict(prog.build_timings)
    _PROGRAMS[job.program_key] = prog
    return prog, timings


def run_shard(graph: Graph, x: np.ndarray, job: ShardJob) -> SimulationResult:
    """Simulate one shard ``x`` in this process (on a Dask worker): through this worker's
    compiled program for ``cpp_standalone``, else with :func:`~scttfs_brian.brian.simulate`.
    ``memory["worker_peak_rss_bytes"]`` is the peak resident memory of this process so far."""
    import_brian2()
    with BRIAN_LOCK:
        if job.target == "cpp_standalone":
            prog, build = _program(graph, job)
            res = prog.simulate(x, record=job.record, progress=False)
            res.timings.update({k: res.timings.get(k, 0.0) + v for k, v in build.items()})
        else:
            from . import simulate

            res = simulate(graph, x, target=job.target, record=job.record, progress=False, **job.options)
    res.memory["worker_peak_rss_bytes"] = process_peak_rss_bytes()
    return res


def release_programs(prefix: str = "") -> int:
    """Close the compiled programs this process holds whose key starts with ``prefix`` (all by
    default) and delete their directories; run it on every worker with
    ``client.run(release_programs)``. Returns how many were closed."""
    closed = 0
    for key in [k for k in _PROGRAMS if k.startswith(prefix)]:
        prog = _PROGRAMS.pop(key)
        where = prog.directory
        with contextlib.suppress(OSError):
            prog.close()
            if where is not None:
                shutil.rmtree(where, ignore_errors=True)
            closed += 1
    return closed


# --------------------------------------------------------------------------------------------
# The client side
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def cluster_client(client: Any = None) -> Iterator[Any]:
    """``client`` if given; else the current Dask client (``distributed.get_client()``, a
    worker's own inside a task); else a ``LocalCluster`` of one single-threaded worker process
    per CPU core, closed on exit."""
    from distributed import Client, get_client, get_worker, worker_client

    if client is not None:
        yield client
        return
    try:
        get_worker()
        inside_task = True
    except ValueError:
        inside_task = False
    if inside_task:  # leave the worker's thread pool while this task waits for its own tasks
        with worker_client() as wc:
            yield wc
        return
    try:
        current = get_client()
    except ValueError:  # no client in this process
        current = None
    if current is not None:
        yield current
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with local_cluster(cores) as cluster, Client(cluster) as local:
        try:
            yield local
        finally:
            with contextlib.suppress(Exception):
                local.run(release_programs)


#: Dask's nanny sets this in every worker process it starts (``distributed.nanny.pre-spawn-environ``,
#: to hand memory back to the system sooner). Setting it at all switches off glibc's dynamic mmap
#: threshold: torch's and numpy's allocations of a few hundred KiB are then mapped and faulted in
#: afresh each time, and the study's tasks took 2.7x the CPU time of the same call in the client
#: process (a fine-tuning sweep: 12.5 s against 4.7 s, measured on this project's machine).
#: :func:`local_cluster` leaves it unset.
MALLOC_TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
#: The value Dask's nanny gives it.
DASK_MALLOC_TRIM_DEFAULT = 65536


#: Dask config of the workers :func:`local_cluster` starts, beyond :data:`MALLOC_TRIM_VARIABLE`:
#: no statistical profiler (by default each worker samples its threads' stacks every 10 ms for
#: the dashboard's profile page, which this cluster does not have; the sampling thread takes the
#: GIL from the simulation: Brian2 shards ran 5 % faster without it, and 2 workers scaled
#: 90-92 % instead of 88-90 %, measured here on the digits CNN). For ``dask worker`` processes
#: started by hand, the same setting is in docs/cluster.md.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def local_cluster(workers: int) -> Any:
    """A Dask ``LocalCluster`` of ``workers`` worker processes of one thread each, without a
    dashboard, whose workers keep glibc's own memory settings (:data:`MALLOC_TRIM_VARIABLE`) and
    run without Dask's statistical profiler (:data:`WORKER_CONFIG`); close it after use
    (``with local_cluster(2) as cluster, Client(cluster) as client: ...``). Where an earlier
    LocalCluster with Dask's defaults left ``MALLOC_TRIM_THRESHOLD_=65536`` in this process's
    environment (Dask's nanny writes it there), it is taken out again."""
    import dask
    from distributed import LocalCluster

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer (got {workers!r})")
    # Dask's nanny writes its pre-spawn environment into this process's own os.environ when it
    # starts a worker (distributed.nanny), so a LocalCluster with Dask's defaults made earlier in
    # this process (a notebook, a test session) leaves MALLOC_TRIM_THRESHOLD_=65536 here for
    # every later child process, and a nanny prefers os.environ to its config: take Dask's value
    # out again (a value set by hand is kept).
    if os.environ.get(MALLOC_TRIM_VARIABLE) == str(DASK_MALLOC_TRIM_DEFAULT):
        del os.environ[MALLOC_TRIM_VARIABLE]
    # the nanny reads these when it is made (and passes the config to its worker process), and
    # uses them again for a worker it restarts
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_TRIM_VARIABLE}": None, **WORKER_CONFIG}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: the engine takes numpy arrays too
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"x holds no inputs (shape {x.shape}); pass a batch, e.g. x[None] for a single input"
        )
    return x


def _job(graph_id: str, target: str, options: dict, record: Any, batch_size: int) -> ShardJob:
    """The shard job, with the keywords each engine function takes: ``compile_program`` has no
    ``images_per_run`` (a program runs a whole shard) and takes only explicit connectivity and
    weight choices (its defaults are ``simulate``'s ``"auto"`` for standalone targets)."""
    if target != "cpp_standalone":
        return ShardJob(target, dict(options), record, batch_size)
    options = {k: v for k, v in options.items() if k != "images_per_run"}
    if options.get("connectivity") == "auto":
        del options["connectivity"]
    if "shared_weights" in options and options["shared_weights"] is None:
        del options["shared_weights"]
    key = hashlib.sha256(repr((graph_id, batch_size, sorted(options.items()))).encode()).hexdigest()[:24]
    return ShardJob(target, options, record, batch_size, key)


def simulate_distributed(
    graph: Graph,
    x: Any,
    *,
    client: Any = None,
    shard_size: int | None = None,
    target: str = "numpy",
    device: str | None = None,
    record: Any = (),
    compile: str = "worker",
    program_dir: str | None = None,
    progress: bool = True,
    shard_function: Callable[[Graph, np.ndarray, ShardJob], SimulationResult] = run_shard,
    **options: Any,
) -> SimulationResult:
    """Simulate inputs ``x`` in Brian2 on the workers of a Dask cluster; the result equals
    :func:`~scttfs_brian.brian.simulate`'s single-process one, spike for spike.

    Parameters
    ----------
    graph : Graph
        The converted network.
    x : array or tensor, shape (N, *graph.input_shape)
        The inputs; split into contiguous shards, one Dask task each.
    client : distributed.Client, optional
        The cluster to use (default: see :func:`cluster_client`; a ``LocalCluster`` made here
        is closed at the end, so pass a client to run several batches on one cluster).
    shard_size : int, optional
        Inputs per shard (default: ``N`` divided evenly over the workers, rounded up). Smaller
        shards balance uneven workers and lose less work to a dead worker; each costs a network
        build in runtime mode (a program run with ``cpp_standalone``).
    target, device : str
        The Brian2 target, as in :func:`~scttfs_brian.brian.simulate`.
    record : sequence of str, dict or True
        Populations whose spike times are returned, as in ``simulate``.
    compile : {"worker", "shared"}
        ``cpp_standalone`` only: each worker compiles once, or the client compiles once into
        ``program_dir`` and the workers copy it (module docstring).
    program_dir : str, optional
        Where the shared build goes (default: a temporary directory on this machine, deleted at
        the end; give a directory on a shared file system for workers on other machines).
    progress : bool
        Show a progress bar over the shards.
    shard_function : callable
        What a worker runs on ``(graph, shard, job)``; :func:`run_shard` (a wrapper can add work
        per shard).
    **options
        Further keywords of ``simulate`` (``copies``, ``dt``, ``images_per_run``,
        ``memory_limit``, ``shared_weights``, ``connectivity``); for ``cpp_standalone`` those of
        ``compile_program``. Each shard chooses its default ``copies`` for its own size.

    Returns
    -------
    SimulationResult
        Arrays concatenated over the shards in input order (:func:`merge_results`); ``timings``
        hold each phase summed over the shards (worker-seconds) plus ``"wall"``, this call's
        elapsed time; ``memory["worker_peak_rss_bytes"]`` is the largest worker process peak.
    """
    from . import check_target

    if device is not None:
        if target not in ("numpy", device):
            raise ValueError(f"give target or device, not both (got target={target!r}, device={device!r})")
        target = device
    check_target(target)
    if compile not in ("worker", "shared"):
        raise ValueError(f"compile must be 'worker' or 'shared' (got {compile!r})")
    if compile == "shared" and target != "cpp_standalone":
        raise ValueError(f"compile='shared' shares a cpp_standalone build (got target={target!r})")
    x = _as_array(x)
    t_start = time.perf_counter()
    data = graph_to_bytes(graph)
    gid = graph_key(data)
    with cluster_client(client) as c, contextlib.ExitStack() as cleanup:
        n_workers = _wait_for_workers(c)
        prepare_workers(c)
        bounds = shard_bounds(len(x), shard_size if shard_size is not None else math.ceil(len(x) / n_workers))
        batch = max(e - s for s, e in bounds)
        job = _job(gid, target, options, record, batch)
        shared_timings: dict = {}
        if compile == "shared":
            job, shared_timings = _share_program(graph, job, program_dir, cleanup)
            cleanup.callback(_release_everywhere, c, job.program_key)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            g = c.submit(graph_from_bytes, data, key=f"scttfs-graph-{gid}")
            if n_workers > 1:
                _on_every_worker(c, g)
            run_id = uuid.uuid4().hex[:8]
            futures = [
                c.submit(shard_function, g, x[s:e], job, key=f"scttfs-shard-{run_id}-{i}", pure=False)
                for i, (s, e) in enumerate(bounds)
            ]
        parts = gather_in_order(c, futures, progress, f"Brian2 {target} shards ({n_workers} workers)")
    res = merge_results(parts)
    for k, v in shared_timings.items():  # the one compilation, here
        res.timings[k] = res.timings.get(k, 0.0) + v
    res.timings["wall"] = time.perf_counter() - t_start
    return res


def _on_every_worker(client: Any, graph_future: Any) -> None:
    """Copy the loaded graph to every worker before any shard starts (``Client.replicate``).

    Otherwise a worker fetches it, when its first shard is due, from the worker that loaded it,
    which by then is simulating its own shard: Brian2 holds that process's GIL, so the transfer
    waits on it (measured here: the second of two workers started its shard 0.8 s after the
    first, in a 10 s run). Dask's active memory manager may later drop the extra copies of a
    graph no shard waits for; a worker that lacks it then fetches it, as before."""
    client.replicate([graph_future])
    if graph_future.status == "error":
        raise_task_error(graph_future)  # e.g. the graph's bytes could not be read


def _wait_for_workers(client: Any) -> int:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise TimeoutError(
            f"the Dask cluster at {client.scheduler.address} has no worker after {WORKER_WAIT_S} s; "
            "start some (`dask worker ADDRESS --nthreads 1`, see docs/cluster.md)"
        ) from None
    return max(1, len(client.scheduler_info()["workers"]))


def _share_program(
    graph: Graph, job: ShardJob, program_dir: str | None, cleanup: contextlib.ExitStack
) -> tuple[ShardJob, dict]:
    """Compile ``job``'s program here, once, into ``program_dir`` (default: a temporary directory
    deleted by ``cleanup``); returns the job that carries it to the workers, and the build's
    timings."""
    from . import compile_program

    made = program_dir is None
    where = tempfile.mkdtemp(prefix="scttfs_shared_program_") if made else os.path.abspath(program_dir)
    if made:
        cleanup.callback(shutil.rmtree, where, True)
    prog = compile_program(graph, job.batch_size, directory=where, **job.options)
    shipped = copy.copy(prog)
    shipped.graph = None  # the workers have the graph already
    key = f"{job.program_key}-shared-{uuid.uuid4().hex[:6]}"
    job = ShardJob(job.target, job.options, job.record, job.batch_size, key, where, shipped)
    return job, dict(prog.build_timings)


def _release_everywhere(client: Any, prefix: str) -> None:
    with contextlib.suppress(Exception):
        client.run(release_programs, prefix)


def raise_task_error(future: Any) -> None:
    """Raise the exception of a failed Dask future as the task raised it: its type, message and
    remote traceback (not Dask's wrapper), so that a failing shard or task ends a run with its
    own reason."""
    exc, tb = future.exception(), future.traceback()
    raise exc.with_traceback(tb)


def gather_in_order(client: Any, futures: list, progress: bool = True, desc: str = "tasks") -> list:
    """The results of ``futures`` in their order, with a progress bar over their completion.

    The first task that fails ends the wait: the others are cancelled and its exception is
    raised as the task raised it (type, message and remote traceback). Tasks whose worker dies
    are recomputed by Dask on another worker and do not fail."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    bar = tqdm(total=len(futures), disable=not progress, desc=desc, unit="task", leave=False)
    try:
        for f in as_completed(futures, loop=client.loop):
            if f.status == "error":
                client.cancel([g for g in futures if g.key != f.key])
                raise_task_error(f)
            results[index[f.key]] = f.result()
            bar.update(1)
    finally:
        bar.close()
        client.cancel(futures)
    return results
