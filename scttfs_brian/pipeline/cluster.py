"""Sweeps and the study on a Dask cluster: grid points as tasks, and the cluster the CLI opens.

A grid point (a seed, a code, a window ``T``, fine-tuning or not) is one call ``fn(point)``;
:func:`map_grid` runs them as Dask tasks and returns their results in the order of the points,
so the caller merges them into its study file exactly as it would after a local loop. Without a
cluster it runs the same loop in this process.

The command line opens the cluster with :func:`client_from_options`: ``--scheduler ADDRESS``
connects to a running cluster (``dask scheduler`` and ``dask worker`` on several machines, or
dask-jobqueue on SLURM: docs/cluster.md), ``--workers N`` starts a ``LocalCluster`` of ``N``
single-threaded worker processes on this machine; :func:`add_cluster_arguments` declares both.

Faults are Dask's: a point whose worker dies is recomputed on another worker; a point that
raises ends the run with its own exception (the remaining points are cancelled), never a hang.
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..brian.distributed import gather_in_order, prepare_workers

__all__ = ["map_grid", "client_from_options", "add_cluster_arguments"]


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
    points = list(points)
    if client is None:
        client = _current_client()
    if client is None:
        from tqdm.auto import tqdm

        return [fn(p) for p in tqdm(points, disable=not progress, desc=desc, unit="point", leave=False)]
    prepare_workers(client)  # grid points run Brian2: import it when each worker starts
    run = uuid.uuid4().hex[:8]
    name = "".join(ch if ch.isalnum() else "-" for ch in desc)
    futures = [client.submit(fn, p, key=f"{name}-{run}-{i}", pure=False) for i, p in enumerate(points)]
    return gather_in_order(client, futures, progress, desc)


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
        simulation per process at a time).
    """
    if scheduler is not None and workers is not None:
        raise ValueError(
            f"give --scheduler (an existing cluster) or --workers (a local one), not both "
            f"(got scheduler={scheduler!r}, workers={workers!r})"
        )
    if scheduler is None and workers is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        kwargs = {"scheduler_file": scheduler} if str(scheduler).endswith(".json") else {"address": scheduler}
        with Client(**kwargs) as client:
            yield client
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer (got {workers!r})")
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` (mutually exclusive) to ``parser``; pass
    ``args.scheduler, args.workers`` to :func:`client_from_options`."""
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
        type=int,
        default=None,
        help="run on a local Dask cluster of N worker processes (one thread each)",
    )
