"""Results of a Brian2 run, from plain arrays, as one :class:`~scttfs_brian.results.SimulationResult`.

Both ways of running a network end here through the same function, :func:`collect`: a runtime
or ``build_on_run`` standalone run reads its monitors (:func:`recorded_from_monitors`), a
compiled program (:mod:`.program`) reads the monitors' result files; either way the run is
described by a :class:`Recorded` of numpy arrays.

Copy ``c`` takes input slot ``s`` (input ``s * copies + c``); layer ``l`` encodes slot ``s`` in
window ``s + w_l`` (``w_l`` = :attr:`Graph.windows`), so a spike in window ``w`` of neuron
``c * n + k`` belongs to input ``(w - w_l) * copies + c``, neuron ``k``. Spikes of windows with
no valid slot (the pipeline filling up, padding copies) are discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..graph import Graph
from ..results import SimulationResult
from .neurons import spike_steps

__all__ = ["Events", "Recorded", "Piece", "recorded_from_monitors", "collect", "merge"]


@dataclass
class Events:
    """The events one monitor recorded: neuron indices ``i`` and times ``t`` in seconds."""

    i: np.ndarray
    t: np.ndarray


@dataclass
class Recorded:
    """What one run of a network with ``copies`` copies recorded, as plain arrays."""

    #: Output potentials, shape ``(copies * n_output, n_records)``: one record per window, at
    #: its start.
    output_v: np.ndarray
    #: ``{population: (encoding spikes, calibration spikes or None)}``.
    events: dict[str, tuple[Events, Events | None]]
    copies: int


class Piece(NamedTuple):
    """The results of one run (a chunk or a batch of inputs), before :func:`merge`."""

    outputs: np.ndarray
    counts: dict
    times: dict


def recorded_from_monitors(monitors: dict, out_monitor: Any, copies: int) -> Recorded:
    """:class:`Recorded` from the Brian2 monitors of a built network: ``monitors`` maps each
    population to its :class:`~.neurons.LayerMonitors`, ``out_monitor`` records the output
    layer's ``v``."""

    def events(m):
        return None if m is None else Events(np.asarray(m.i[:], dtype=np.int64), np.asarray(m.t_[:]))

    return Recorded(
        output_v=np.asarray(out_monitor.v[:]),
        events={name: (events(mon.spikes), events(mon.calibrations)) for name, mon in monitors.items()},
        copies=copies,
    )


def collect(graph: Graph, recorded: Recorded, n_inputs: int, slots: int, dt, record: dict) -> Piece:
    """Outputs, spike counts and (for the populations in ``record``) spike times of the
    ``n_inputs`` inputs a run took in ``slots`` windows per copy."""
    T, B = graph.T, recorded.copies
    n_out = graph.output.size
    rows = np.arange(slots) + graph.windows[graph.output.name] + 1
    v = recorded.output_v[:, rows]
    outputs = v.reshape(B, n_out, slots).transpose(2, 0, 1).reshape(slots * B, n_out)[:n_inputs]
    counts, times = {}, {}
    for name, pair in recorded.events.items():
        size = int(np.prod(graph.shape_of(name)))
        per = np.zeros((n_inputs, 2), dtype=np.int64)
        want = name in record
        if want:
            times[name] = tuple(np.full((n_inputs, size), -1, dtype=np.int64) for _ in range(2))
        for col, ev in enumerate(pair):
            if ev is None:
                continue
            idx = np.asarray(ev.i, dtype=np.int64)
            window, step = spike_steps(ev.t, dt, T)
            slot = window - graph.windows[name]
            image = slot * B + idx // size
            ok = (slot >= 0) & (slot < slots) & (image < n_inputs)
            per[:, col] = np.bincount(image[ok], minlength=n_inputs)
            if want:
                times[name][col][image[ok], (idx % size)[ok]] = step[ok]
        counts[name] = per
    for name, idx in record.items():
        if idx is None:
            times[name] = tuple(t.reshape((n_inputs,) + graph.shape_of(name)) for t in times[name])
        else:
            times[name] = tuple(t[:, idx] for t in times[name])
    return Piece(outputs, counts, times)


def merge(graph: Graph, pieces: list[Piece], timings: dict, memory: dict) -> SimulationResult:
    """One result from the pieces of :func:`collect` (one per chunk or batch, in input order)."""
    out = np.concatenate([p.outputs for p in pieces])
    return SimulationResult(
        outputs=out,
        predictions=out.argmax(axis=1),
        spike_counts={k: np.concatenate([p.counts[k] for p in pieces]) for k in pieces[0].counts},
        latency_steps=graph.latency_steps,
        spike_times={
            k: tuple(np.concatenate([p.times[k][j] for p in pieces]) for j in range(2))
            for k in pieces[0].times
        },
        backend="brian2",
        timings=timings,
        memory=memory,
    )
