"""The object :func:`scttfs_brian.convert` returns: a graph plus the two ways to run it."""

from __future__ import annotations

from typing import Any

from .graph import Graph


class SpikingNetwork:
    """A converted SC-TTFS (or TTFS) network.

    ``snn.functional(x)`` runs the torch twin (fast, batched, differentiable kernels);
    ``snn.simulate(x, backend="brian2")`` runs the Brian2 network (many images per ``run``).
    Both follow the same rule and agree spike for spike in float64.
    """

    def __init__(self, graph: Graph):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a scttfs_brian.graph.Graph (got {type(graph).__name__})")
        self.graph = graph

    def functional(self, x: Any, **kwargs):
        """Run the torch twin: see :func:`scttfs_brian.torch.run`."""
        from .torch import run

        return run(self.graph, x, **kwargs)

    def simulate(self, x: Any, backend: str = "brian2", distributed: Any = False, **kwargs):
        """Simulate ``x`` (a batch of inputs). ``backend="brian2"``: see
        :func:`scttfs_brian.brian.simulate`; ``backend="torch"``: the torch twin, same result
        object. ``distributed=True`` (or a ``dask.distributed.Client``) shards the Brian2 run
        over a Dask cluster's workers, same result: see
        :func:`scttfs_brian.brian.distributed.simulate_distributed`."""
        if distributed is not False and distributed is not None:
            if backend != "brian2":
                raise ValueError(f"distributed runs are Brian2 runs: use backend='brian2' (got {backend!r})")
            from .brian.distributed import simulate_distributed

            client = None if distributed is True else distributed
            return simulate_distributed(self.graph, x, client=client, **kwargs)
        if backend == "brian2":
            from .brian import simulate

            return simulate(self.graph, x, **kwargs)
        if backend == "torch":
            from .torch import run, simulate

            _check_options((simulate, run), kwargs, "backend='torch' (the torch twin)")
            return simulate(self.graph, x, **kwargs)
        raise ValueError(f"backend must be 'brian2' or 'torch' (got {backend!r})")

    def compile(self, batch_size: int, **kwargs):
        """Compile the Brian2 network once (``cpp_standalone``) for batches of up to
        ``batch_size`` inputs: see :func:`scttfs_brian.brian.compile_program`. The returned
        program's ``simulate(x)`` reruns it without recompiling."""
        from .brian import compile_program

        return compile_program(self.graph, batch_size, **kwargs)

    @property
    def latency_steps(self) -> int:
        return self.graph.latency_steps

    def save(self, path) -> None:
        self.graph.save(path)

    @classmethod
    def load(cls, path) -> SpikingNetwork:
        return cls(Graph.load(path))

    def __repr__(self) -> str:
        return f"SpikingNetwork(\n{self.graph.summary()}\n)"


def _check_options(fns: tuple, kwargs: dict, engine: str) -> None:
    """Refuse options none of ``fns`` takes, naming them (``copies``, ``target`` are Brian2's)."""
    import inspect

    takes = set()
    for fn in fns:
        takes |= {k for k, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
    unknown = sorted(set(kwargs) - takes)
    if unknown:
        raise TypeError(
            f"simulate() with {engine} does not take {', '.join(map(repr, unknown))} (options of the Brian2 "
            f"engine, backend='brian2'?); it takes {sorted(takes)}"
        )
