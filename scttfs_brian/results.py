"""The result of simulating a converted network, the same for every backend."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SimulationResult:
    """What a simulation of ``N`` inputs returns (numpy arrays, one row per input).

    Attributes
    ----------
    outputs : ndarray, shape (N, n_out)
        Output-layer membrane potentials at the end of their integration window.
    predictions : ndarray of int, shape (N,)
        ``argmax`` of ``outputs``.
    spike_counts : dict[str, ndarray of int, shape (N, 2)]
        Per spiking population (``"input"`` included when the input is encoded): the number of
        encoding spikes (column 0) and calibration spikes (column 1) for each input.
    latency_steps : int
        Steps from the first encoding window to the end of the last (SPEC section 2).
    spike_times : dict[str, tuple[ndarray, ndarray]]
        For the populations asked for: ``(t_enc, t_cal)`` of shape ``(N, *layer_shape)``, the
        step inside the layer's window, ``-1`` = no spike.
    backend : str
        ``"brian2"`` or ``"torch"``.
    timings : dict[str, float]
        Wall-clock seconds of the phases, where measured: ``build`` (network construction),
        ``run`` (simulation; for standalone targets the compiled program's own run time) and,
        for standalone targets, ``codegen`` (code generation), ``compile`` (``make``) and
        ``setup`` (the program's time before its simulation: loading arrays, creating synapses).
    memory : dict[str, int]
        Where measured: ``program_peak_rss_bytes``, the peak resident memory of the compiled
        program (``cpp_standalone``).
    """

    outputs: np.ndarray
    predictions: np.ndarray
    spike_counts: dict
    latency_steps: int
    spike_times: dict = field(default_factory=dict)
    backend: str = ""
    timings: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)

    @property
    def spikes_per_input(self) -> np.ndarray:
        """Total spikes (encoding + calibration, all populations) for each input."""
        return sum(c.sum(axis=1) for c in self.spike_counts.values())

    def accuracy(self, labels) -> float:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape != self.predictions.shape:
            raise ValueError(f"labels has {labels.size} entries for {self.predictions.size} predictions")
        return float(np.mean(self.predictions == labels))
