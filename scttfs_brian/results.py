"""The result of simulating a converted network, the same for every backend, and the spike-for-spike
comparison of two results (:meth:`SimulationResult.compare`, the :class:`Agreement` record); a
result restricted to some of its inputs is :meth:`SimulationResult.select`.

A result is saved as one ``.npz`` archive (arrays; the scalars and timings as a JSON string inside),
written atomically and read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SimulationResult", "Agreement", "LayerAgreement"]

#: Version of the ``.npz`` layout written by :meth:`SimulationResult.save`.
RESULT_FORMAT = 1


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

    def select(self, inputs: Any) -> SimulationResult:
        """The result restricted to some of its inputs, in the order given.

        Parameters
        ----------
        inputs : slice, sequence of int or boolean mask
            Which inputs (rows) to keep: ``slice(n)`` or ``range(n)`` for the first ``n``, indices
            (negative ones count from the end; repeats allowed), or a boolean mask of length ``N``.
            A single integer is refused: pass ``[i]`` (a result always holds a batch).

        Returns
        -------
        SimulationResult
            A new result whose arrays are copies of the selected rows: ``outputs``,
            ``predictions``, every population's ``spike_counts`` and recorded ``spike_times``
            (and so ``spikes_per_input``). ``latency_steps`` and ``backend`` are kept, and so are
            ``timings`` and ``memory``: they are those of the run that simulated all ``N`` inputs,
            not rescaled to the selection. ``res.select(slice(n)).compare(other)`` compares the
            first ``n`` inputs of ``res`` with a run ``other`` of those ``n`` inputs.

        Examples
        --------
        >>> first = res.select(slice(100))          # doctest: +SKIP
        >>> first.compare(snn.simulate(x[:100])).exact  # doctest: +SKIP
        True
        """
        n = len(self.predictions)
        if isinstance(inputs, (bool, np.bool_, int, np.integer)):
            raise TypeError(
                f"inputs must be a slice, a sequence of indices or a boolean mask (got the single "
                f"{type(inputs).__name__} {inputs!r}); pass [{inputs!r}] for one input or slice({inputs!r}) "
                "for the first ones"
            )
        if not isinstance(inputs, slice):
            inputs = np.asarray(inputs)
            if (
                inputs.dtype == object
                or inputs.ndim != 1
                or not (inputs.dtype == bool or np.issubdtype(inputs.dtype, np.integer) or inputs.size == 0)
            ):
                raise TypeError(
                    f"inputs must be a slice, a 1-D sequence of integer indices or a boolean mask "
                    f"(got an array of dtype {inputs.dtype} and shape {inputs.shape})"
                )
            if inputs.dtype == bool and inputs.shape != (n,):
                raise ValueError(
                    f"a boolean mask of inputs must have one entry per input ({n}); got {inputs.size}"
                )
            if inputs.dtype != bool:
                inputs = inputs.astype(np.intp)
                bad = inputs[(inputs < -n) | (inputs >= n)]
                if bad.size:
                    raise IndexError(
                        f"input index {int(bad[0])} is out of range for a result of {n} inputs "
                        f"(valid: {-n} to {n - 1})"
                    )
        rows = np.arange(n)[inputs]

        def pick(a):
            return np.asarray(a)[rows]  # integer indexing: always a copy

        return SimulationResult(
            outputs=pick(self.outputs),
            predictions=pick(self.predictions),
            spike_counts={k: pick(v) for k, v in self.spike_counts.items()},
            latency_steps=self.latency_steps,
            spike_times={k: (pick(te), pick(tc)) for k, (te, tc) in self.spike_times.items()},
            backend=self.backend,
            timings=dict(self.timings),
            memory=dict(self.memory),
        )

    # -- comparison ------------------------------------------------------------------------------
    def compare(self, other: SimulationResult, layers: Iterable[str] | None = None) -> Agreement:
        """Spike-for-spike agreement of this result with ``other`` (same inputs, any two backends).

        Parameters
        ----------
        other : SimulationResult
            The result to compare with, of the same ``N`` inputs (e.g. the torch engine's result
            for the inputs that Brian2 simulated, or a second Brian2 run on another target).
        layers : iterable of str, optional
            The populations to compare; each must have spike counts in both results. Default: every
            population either result counted or recorded, where one that only one of the two holds
            is listed in :attr:`Agreement.unmatched` (and the agreement is not exact).

        Returns
        -------
        Agreement
            Per population: inputs whose spike counts differ and, where both results recorded
            spike times, the ``t_enc`` / ``t_cal`` entries that differ; the share of equal
            predictions and the largest ``|output difference|``. ``.exact`` says whether every
            count, time and prediction is equal.
        """
        n = len(self.predictions)
        if len(other.predictions) != n:
            raise ValueError(
                f"cannot compare a result of {n} inputs with one of {len(other.predictions)}; "
                "simulate the same inputs with both"
            )
        if layers is None:
            names = [*self.spike_counts, *self.spike_times, *other.spike_counts, *other.spike_times]
            names = list(dict.fromkeys(names))
            unmatched = tuple(
                k
                for k in names
                if (k in self.spike_counts) != (k in other.spike_counts)
                or (k in self.spike_times) != (k in other.spike_times)
            )
        else:
            names = list(layers)
            for k in names:
                for which, res in (("this", self), ("the other", other)):
                    if k not in res.spike_counts:
                        raise ValueError(
                            f"layer {k!r} has no spike counts in {which} result "
                            f"(it has {sorted(res.spike_counts)}); compare layers both results counted"
                        )
            unmatched = ()
        per_layer = {
            k: _layer_agreement(k, self, other)
            for k in names
            if (k in self.spike_counts and k in other.spike_counts)
            or (k in self.spike_times and k in other.spike_times)
        }
        a, b = np.asarray(self.outputs, dtype=float), np.asarray(other.outputs, dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"outputs have shape {a.shape} here and {b.shape} in the other result")
        return Agreement(
            inputs=n,
            layers=per_layer,
            unmatched=unmatched,
            prediction_agreement=float(np.mean(np.asarray(self.predictions) == np.asarray(other.predictions)))
            if n
            else 1.0,
            max_output_difference=float(np.max(np.abs(a - b))) if a.size else 0.0,
            backends=(self.backend, other.backend),
        )

    # -- files -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the result to ``path`` (``.npz``: the arrays, plus the backend, latency, timings
        and memory as JSON), atomically: a temporary file in the same folder, then ``os.replace``,
        so a file that exists is complete. Returns the path."""
        path = Path(path)
        arrays: dict[str, Any] = {
            "outputs": np.asarray(self.outputs),
            "predictions": np.asarray(self.predictions),
        }
        for k, v in self.spike_counts.items():
            arrays[f"counts/{k}"] = np.asarray(v)
        for k, (te, tc) in self.spike_times.items():
            arrays[f"t_enc/{k}"] = np.asarray(te)
            arrays[f"t_cal/{k}"] = np.asarray(tc)
        meta = {
            "format": RESULT_FORMAT,
            "backend": self.backend,
            "latency_steps": int(self.latency_steps),
            "timings": {k: float(v) for k, v in self.timings.items()},
            "memory": {k: int(v) for k, v in self.memory.items()},
        }
        arrays["meta"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationResult:
        """Read a result that :meth:`save` wrote (no pickle); a file of another kind is refused with
        a :class:`ValueError` that names it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = _read_meta(f)
                counts = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("counts/")}
                times = {
                    k.split("/", 1)[1]: (f[k], f["t_cal/" + k.split("/", 1)[1]])
                    for k in f.files
                    if k.startswith("t_enc/")
                }
                return cls(
                    outputs=f["outputs"],
                    predictions=f["predictions"],
                    spike_counts=counts,
                    latency_steps=int(meta["latency_steps"]),
                    spike_times=times,
                    backend=str(meta["backend"]),
                    timings=dict(meta["timings"]),
                    memory=dict(meta.get("memory", {})),
                )
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as err:  # zip, JSON and layout errors
            raise ValueError(
                f"{path} is not a simulation result written by SimulationResult.save ({err}); "
                "delete it and simulate again"
            ) from None


def _read_meta(f) -> dict:
    """The JSON part of a saved result; files from before ``meta`` existed (the ``scttfs`` run
    directories of earlier versions) kept the same values as separate entries."""
    missing = {"outputs", "predictions"} - set(f.files)
    if missing:
        raise ValueError(f"lacks {sorted(missing)}")
    if "meta" in f.files:
        return json.loads(str(f["meta"]))
    return {
        "backend": str(f["backend"]),
        "latency_steps": int(f["latency_steps"]),
        "timings": json.loads(str(f["timings"])),
    }


def _layer_agreement(name: str, a: SimulationResult, b: SimulationResult) -> LayerAgreement:
    count_mismatches = None
    if name in a.spike_counts and name in b.spike_counts:
        ca, cb = np.asarray(a.spike_counts[name]), np.asarray(b.spike_counts[name])
        if ca.shape != cb.shape:
            raise ValueError(
                f"spike counts of layer {name!r} have shape {ca.shape} here and {cb.shape} there"
            )
        count_mismatches = int(np.count_nonzero(np.any(ca != cb, axis=1)))
    neurons = t_enc = t_cal = None
    if name in a.spike_times and name in b.spike_times:
        (ea, la), (eb, lb) = (tuple(np.asarray(t) for t in r.spike_times[name]) for r in (a, b))
        if ea.shape != eb.shape:
            raise ValueError(
                f"spike times of layer {name!r} have shape {ea.shape} here and {eb.shape} there; "
                "compare results recorded on the same neurons"
            )
        neurons = int(ea[0].size) if len(ea) else 0
        t_enc, t_cal = int(np.count_nonzero(ea != eb)), int(np.count_nonzero(la != lb))
    return LayerAgreement(
        neurons=neurons, count_mismatches=count_mismatches, t_enc_mismatches=t_enc, t_cal_mismatches=t_cal
    )


@dataclass(frozen=True)
class LayerAgreement:
    """How one population of two results compares.

    Attributes
    ----------
    neurons : int or None
        Neurons per input whose spike times were compared (``None``: not recorded by both).
    count_mismatches : int or None
        Inputs whose (encoding, calibration) spike counts differ (``None``: counted by only one).
    t_enc_mismatches, t_cal_mismatches : int or None
        Entries of ``t_enc`` / ``t_cal`` (inputs x neurons) that differ (``None``: not recorded
        by both).
    """

    neurons: int | None
    count_mismatches: int | None
    t_enc_mismatches: int | None
    t_cal_mismatches: int | None

    @property
    def exact(self) -> bool:
        """Every compared count and time equal."""
        return not any((self.count_mismatches, self.t_enc_mismatches, self.t_cal_mismatches))


@dataclass(frozen=True)
class Agreement:
    """The record :meth:`SimulationResult.compare` returns.

    Attributes
    ----------
    inputs : int
        Number of inputs compared.
    layers : dict[str, LayerAgreement]
        Per population compared.
    unmatched : tuple of str
        Populations counted or recorded by only one of the two results.
    prediction_agreement : float
        Share of inputs with the same prediction (1.0 = all).
    max_output_difference : float
        ``max |outputs - other.outputs|`` (rounding of the output potentials: not part of
        :attr:`exact`).
    backends : tuple of str
        The two results' backends, in order.
    """

    inputs: int
    layers: dict[str, LayerAgreement]
    unmatched: tuple[str, ...]
    prediction_agreement: float
    max_output_difference: float
    backends: tuple[str, str] = ("", "")

    @property
    def spikes_exact(self) -> bool:
        """Every spike count and recorded spike time equal, in the same populations."""
        return not self.unmatched and all(layer.exact for layer in self.layers.values())

    @property
    def predictions_exact(self) -> bool:
        return self.prediction_agreement == 1.0

    @property
    def exact(self) -> bool:
        """Spike for spike the same (counts and times) and the same predictions."""
        return self.spikes_exact and self.predictions_exact

    @property
    def timed_layers(self) -> list[str]:
        """The populations whose spike times were compared."""
        return [k for k, v in self.layers.items() if v.neurons is not None]

    def to_dict(self) -> dict:
        """Plain JSON data (``identical`` = :attr:`exact`), as written into ``metrics.json``."""
        return {
            "identical": self.exact,
            "spikes_identical": self.spikes_exact,
            "predictions_identical": self.predictions_exact,
            "prediction_agreement": self.prediction_agreement,
            "max_output_difference": self.max_output_difference,
            "inputs": self.inputs,
            "backends": list(self.backends),
            "unmatched": list(self.unmatched),
            "layers": {k: vars(v).copy() for k, v in self.layers.items()},
        }

    def mismatches(self) -> str:
        """The populations that differ, e.g. ``"conv1: 3 t_enc, 0 t_cal, 1 counts"``."""
        parts = [
            f"{k}: {v.t_enc_mismatches or 0} t_enc, {v.t_cal_mismatches or 0} t_cal, "
            f"{v.count_mismatches or 0} counts"
            for k, v in self.layers.items()
            if not v.exact
        ]
        parts += [f"{k}: recorded by one result only" for k in self.unmatched]
        return "; ".join(parts)

    def __str__(self) -> str:
        a, b = (x or "?" for x in self.backends)
        head = f"{a} vs {b}, {self.inputs} inputs, {len(self.layers)} populations"
        if self.exact:
            return (
                f"exact ({head}): spike counts and times identical, predictions identical, "
                f"max |output difference| {self.max_output_difference:.1e}"
            )
        return (
            f"MISMATCH ({head}): {self.mismatches() or 'spikes identical'}; predictions agree on "
            f"{100 * self.prediction_agreement:.1f} %, max |output difference| {self.max_output_difference:.1e}"
        )
