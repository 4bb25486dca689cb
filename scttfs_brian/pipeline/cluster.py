"""Sweeps and the study on a Dask cluster: grid points as tasks, and the cluster the CLI opens.

A grid point (a seed, a code, a window ``T``, fine-tuning or not) is one call ``fn(point)``;
:func:`map_grid` runs them as Dask tasks and returns their results in the order of the points,
so the caller merges them into its study file exactly as it would after a local loop. Without a
cluster it runs the same loop in this process. Work whose pieces depend on each other (the
study: an ANN per seed, then the conversions and the fine-tuning sweep that read it, then the
Brian2 check of the swept network) is a list of :class:`Task` run by :func:`run_tasks`: one Dask
task each, a task's ``after`` as Dask dependencies, and each result handed to the caller as soon
as its task finishes.

The command line opens the cluster with :func:`client_from_options`: ``--scheduler ADDRESS``
connects to a running cluster (``dask scheduler`` and ``dask worker`` on several machines, or
dask-jobqueue on SLURM: docs/cluster.md), ``--workers N`` starts a ``LocalCluster`` of ``N``
single-threaded worker processes on this machine; :func:`add_cluster_arguments` declares both.

Faults are Dask's: a point whose worker dies is recomputed on another worker; a point that
raises ends the run with its own exception (the remaining points are cancelled), never a hang;
a task that depends on a failed one fails with the same exception.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..brian.distributed import MALLOC_TRIM_VARIABLE, local_cluster, prepare_workers, raise_task_error

__all__ = [
    "map_grid",
    "Task",
    "run_tasks",
    "local_cluster",
    "MALLOC_TRIM_VARIABLE",
    "client_from_options",
    "add_cluster_arguments",
]



def _current_client() -> Any:
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return get_client()
    except ValueError:  # no client in this process
        return None


def map_grid(
    fn: Callable[[Any], Any],
    points: Iterable[Any],
    client: Any = None,
    progress: bool = True,
    *,
    desc: str = "grid points",
) -> list:
    """``[fn(p) for p in points]``, each call a Dask task, results in the order of ``points``.

    Parameters
    ----------
    fn : callable
        Runs one grid point; must be importable by the workers (a module-level function) and
        return something picklable. Inside ``fn`` Brian2 runs in the worker's own process
        (``distributed=False``): the grid points are the parallel work.
    points : iterable
        The grid points (picklable), e.g. dicts or dataclasses of seed, code, ``T``.
    client : distributed.Client, optional
        The cluster (default: the current Dask client if there is one, else none: the points
        run one after the other in this process).
    progress : bool
        Show a progress bar over the finished points.
    desc : str
        The progress bar's label, also the prefix of the tasks' names on the dashboard.

    Returns
    -------
    list
        ``fn(point)`` for each point, in order.

    Raises
    ------
    Exception
        The exception of the first point that fails, as ``fn`` raised it.
    """
    from tqdm.auto import tqdm

    tasks = [Task(str(i), fn, (p,)) for i, p in enumerate(points)]
    bar = tqdm(total=len(tasks), disable=not progress, desc=desc, unit="point", leave=False)
    try:
        done = run_tasks(
            tasks, _current_client() if client is None else client, on_done=lambda t, r: bar.update(1), prefix=desc
        )
    finally:
        bar.close()
    return [done[t.name] for t in tasks]


@dataclass(frozen=True)
class Task:
    """One piece of work: ``fn(*args)``, run once the tasks named in ``after`` have finished.

    Attributes
    ----------
    name : str
        Unique within a run; part of the Dask key (shown on the dashboard).
    fn : callable
        A module-level function (the workers import it); its result must be picklable.
    args : tuple
        Picklable arguments.
    after : tuple of str
        Names of the tasks that must finish first (listed before this one).
    priority : int
        Among the tasks ready to run, Dask starts those of higher priority first (long tasks on
        the critical path, e.g.); in this process the tasks run in their order.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()
    priority: int = 0


def _call(fn: Callable[..., Any], args: tuple, *dependencies: Any) -> Any:
    """Run ``fn(*args)``; ``dependencies`` (results of the tasks before it) only order it."""
    return fn(*args)


def run_tasks(
    tasks: Sequence[Task],
    client: Any = None,
    *,
    on_done: Callable[[Task, Any], None] | None = None,
    on_wait: Callable[[], None] | None = None,
    poll_s: float = 5.0,
    prefix: str = "task",
) -> dict[str, Any]:
    """Run ``tasks`` (each after those it names in ``after``), on ``client``'s cluster or here.

    Parameters
    ----------
    tasks : sequence of Task
        In an order where each task comes after those it depends on.
    client : distributed.Client, optional
        The cluster: every task is one Dask task, its ``after`` passed as Dask dependencies
        (futures), so a task starts on any worker as soon as its inputs are done. None: the
        tasks run one after the other in this process, in their order.
    on_done : callable, optional
        ``on_done(task, result)``, called in this process as each task finishes (in the order
        they finish); an exception it raises ends the run (the remaining tasks are cancelled).
    on_wait : callable, optional
        Called every ``poll_s`` seconds while no task finishes (cluster only), e.g. to show the
        progress that long tasks write as they go.
    poll_s : float
    prefix : str
        Prefix of the Dask keys.

    Returns
    -------
    dict
        ``{task.name: result}``.

    Raises
    ------
    Exception
        The exception of the first task that fails (type, message and, on a cluster, the remote
        traceback), after the other tasks were cancelled. A task whose worker dies is recomputed
        by Dask elsewhere; one that kills ``distributed.scheduler.allowed-failures`` + 1 workers
        fails with ``KilledWorker``.
    """
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique (got {sorted(n for n in names if names.count(n) > 1)})")
    seen: set = set()
    for t in tasks:
        missing = [a for a in t.after if a not in seen]
        if missing:
            raise ValueError(f"task {t.name!r} runs after {missing}, which are not listed before it")
        seen.add(t.name)
    results: dict[str, Any] = {}
    if client is None:
        for t in tasks:
            results[t.name] = t.fn(*t.args)
            if on_done is not None:
                on_done(t, results[t.name])
        return results
    prepare_workers(client)  # tasks may run Brian2: import it when each worker starts
    run = uuid.uuid4().hex[:8]
    futures: dict[str, Any] = {}
    by_key: dict[str, Task] = {}
    finished: queue.SimpleQueue = queue.SimpleQueue()
    try:
        for t in tasks:
            key = "".join(ch if ch.isalnum() else "-" for ch in f"{prefix}-{run}-{t.name}")
            deps = [futures[a] for a in t.after]
            f = client.submit(_call, t.fn, t.args, *deps, key=key, priority=t.priority, pure=False)
            futures[t.name], by_key[f.key] = f, t
            f.add_done_callback(finished.put)  # (called in a thread of the client)
        for _ in range(len(tasks)):
            while True:
                try:
                    f = finished.get(timeout=poll_s)
                    break
                except queue.Empty:
                    if on_wait is not None:
                        on_wait()
            t = by_key[f.key]
            if f.status == "error":
                raise_task_error(f)  # (the others are cancelled on the way out)
            if f.status != "finished":
                raise RuntimeError(
                    f"the Dask task of {t.name!r} ended as {f.status!r} (the scheduler lost it or it "
                    "was cancelled elsewhere); run again: finished work is kept"
                )
            results[t.name] = f.result()
            if on_done is not None:
                on_done(t, results[t.name])
    finally:
        client.cancel(list(futures.values()))
    return results


@contextlib.contextmanager
def client_from_options(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """The Dask client the command-line options ask for, closed on exit (a cluster it started
    too); ``None`` when neither is given (run in this process).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``, or a scheduler file path ending in
        ``.json`` as written by ``dask scheduler --scheduler-file``).
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes, one thread each (Brian2 runs one
        simulation per process at a time): :func:`local_cluster`.
    """
    if scheduler is not None and workers is not None:
        raise ValueError(
            f"give --scheduler (an existing cluster) or --workers (a local one), not both "
            f"(got scheduler={scheduler!r}, workers={workers!r})"
        )
    if scheduler is None and workers is None:
        yield None
        return
    from distributed import Client

    if scheduler is not None:
        kwargs = {"scheduler_file": scheduler} if str(scheduler).endswith(".json") else {"address": scheduler}
        with Client(**kwargs) as client:
            yield client
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        yield client


def _worker_count(text: str) -> int:
    """``--workers N``: a positive integer (else a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of worker processes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of worker processes, got {value} (1 runs in this process "
            "where the command allows it)"
        )
    return value


def add_cluster_arguments(parser: argparse.ArgumentParser, *, workers_help: str | None = None) -> None:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` (mutually exclusive) to ``parser``; pass
    ``args.scheduler, args.workers`` to :func:`client_from_options`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    workers_help : str, optional
        The help of ``--workers`` (default: a local Dask cluster of N processes), for a command
        whose default without either option is not its own process. Both options default to
        None, so that giving both is refused whatever their values.
    """
    group = parser.add_argument_group("cluster (Dask)").add_mutually_exclusive_group()
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on an existing Dask cluster: the scheduler's address (tcp://host:8786) or its "
        "scheduler file (.json); see docs/cluster.md",
    )
    group.add_argument(
        "--workers",
        metavar="N",
        type=_worker_count,
        default=None,
        help=workers_help or "run on a local Dask cluster of N worker processes (one thread each)",
    )
