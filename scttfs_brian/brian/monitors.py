"""Monitors of SC-TTFS layers, and spike times as steps inside windows.

:meth:`LayerMonitors.attach` creates an ordinary :class:`~brian2.SpikeMonitor` (encoding spikes)
and :class:`~brian2.EventMonitor` (calibration spikes, scheduled after the calibration check) and
adds them to the group's ``contained_objects``, as :meth:`~brian2.Group.run_regularly` does: they
run wherever the group runs, in an explicit :class:`~brian2.Network` or under plain ``run()``
(which only sees the names of the caller's namespace, never the inside of a dataclass).

A potential or threshold needs no helper: a default ``StateMonitor(G, ("v", "theta_e"),
record=True)`` (``when="start"``) records the values this step's decisions use, because the
window boundary and the threshold update run at ``before_start``; ``when="end"`` records them
after the step's resets and synaptic input (``v_next`` then holds this step's decoded spikes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import brian2 as b2
import numpy as np

from ..coding import NO_SPIKE
from .equations import CAL_PATHWAY_SLOT

__all__ = ["LayerMonitors", "spike_steps", "first_steps"]


def spike_steps(t: np.ndarray, dt: b2.Quantity, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Split monitor times into (window index, step inside the window), as integers.

    ``T`` is the window length in simulation steps: the code's ``T`` times the layer's
    ``steps_per_code_step`` when it runs on finer time (``G.window_steps``).
    """
    step = np.round(np.asarray(t) / float(dt)).astype(np.int64)
    return step // T, step % T


@dataclass
class LayerMonitors:
    """The spike and calibration monitors of one spiking layer (ordinary Brian2 monitors).

    Attributes
    ----------
    spikes : brian2.SpikeMonitor
        Encoding spikes (the group's ``spike`` event).
    calibrations : brian2.EventMonitor or None
        Calibration spikes (the ``calibration`` event); ``None`` for a TTFS layer.
    """

    spikes: b2.SpikeMonitor
    calibrations: b2.EventMonitor | None

    @classmethod
    def attach(cls, G: b2.NeuronGroup, record: Any = True) -> LayerMonitors:
        """Monitor ``G``'s encoding and calibration spikes; named ``{G.name}_spikes`` and
        ``{G.name}_calibrations``. Both are added to ``G.contained_objects``: they run with
        ``G``, under plain ``run()`` too. Adding them to a ``Network`` as well is harmless."""
        spikes = b2.SpikeMonitor(G, record=record, name=f"{G.name}_spikes")
        cal = None
        if "calibration" in G.events:
            when, order = CAL_PATHWAY_SLOT
            cal = b2.EventMonitor(
                G, "calibration", record=record, when=when, order=order, name=f"{G.name}_calibrations"
            )
        G.contained_objects.extend(m for m in (spikes, cal) if m is not None)
        return cls(spikes, cal)

    @property
    def objects(self) -> list:
        """The monitors, for ``Network(G, *monitors.objects)``."""
        return [m for m in (self.spikes, self.calibrations) if m is not None]

    def __iter__(self):
        """``spikes, calibrations = LayerMonitors.attach(G)``."""
        return iter((self.spikes, self.calibrations))


def first_steps(monitor, N: int, dt: b2.Quantity, T: int) -> np.ndarray:
    """Step inside the window of each neuron's event in a one-window run (``-1``: none); ``T``
    as in :func:`spike_steps`. Refuses a neuron with two events of one kind (the rule forbids it)."""
    out = np.full(N, NO_SPIKE, dtype=np.int64)
    i = np.asarray(monitor.i[:])
    _, step = spike_steps(monitor.t[:], dt, T)
    if np.unique(i).size != i.size:
        raise RuntimeError("a neuron spiked twice with the same event in one window: the rule was violated")
    out[i] = step
    return out
