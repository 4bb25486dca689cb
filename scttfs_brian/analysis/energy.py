r"""Energy (eq. 25), :math:`E = N E_i + L E_l`, and the paper's Tables 2-3 as data.

:func:`energy` and :func:`energy_table` evaluate eq. 25; the paper says only that its estimates
were "normalized", so :func:`energy_table` takes the normalization as a parameter (see there and
``analysis/README.md`` for the readings that reproduce the paper's "about 80 %").
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .tables import Table

__all__ = [
    "PLATFORMS",
    "energy",
    "EnergyTable",
    "energy_table",
    "MethodResult",
    "load_method_results",
    "method_energy_table",
]

#: Energy weights ``(E_i, E_l)`` per platform (eq. 25, after the paper's ref. [33]):
#: ``E_i`` weighs the spike count (computation and routing), ``E_l`` the latency (static energy).
PLATFORMS: dict[str, tuple[float, float]] = {
    "truenorth": (0.4, 0.6),
    "spinnaker": (0.64, 0.36),
}


def _platform(platform: str | tuple[float, float]) -> tuple[float, float]:
    if isinstance(platform, str):
        key = platform.lower()
        if key not in PLATFORMS:
            raise ValueError(
                f"platform must be one of {sorted(PLATFORMS)} or a pair (E_i, E_l) (got {platform!r})"
            )
        return PLATFORMS[key]
    e_i, e_l = (float(x) for x in platform)
    return e_i, e_l


def energy(
    spikes: Any,
    latency: Any,
    platform: str | tuple[float, float],
    *,
    spikes_scale: float = 1.0,
    latency_scale: float = 1.0,
) -> Any:
    r"""Energy estimate of eq. 25, :math:`E = N E_i + L E_l`.

    Parameters
    ----------
    spikes : float or array_like
        ``N``, spikes per image.
    latency : float or array_like
        ``L``, inference latency in time steps.
    platform : str or (float, float)
        ``"truenorth"`` (``E_i, E_l = 0.4, 0.6``), ``"spinnaker"`` (``0.64, 0.36``) or a pair.
    spikes_scale, latency_scale : float
        ``N`` and ``L`` are divided by these before weighting (1 = raw eq. 25; see
        :func:`energy_table` for the normalization that reproduces the paper).

    Returns
    -------
    float or ndarray
        ``(N / spikes_scale) * E_i + (L / latency_scale) * E_l``.
    """
    e_i, e_l = _platform(platform)
    n = np.asarray(spikes, dtype=np.float64) / spikes_scale
    lat = np.asarray(latency, dtype=np.float64) / latency_scale
    out = n * e_i + lat * e_l
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class EnergyTable:
    """Normalized energies of several methods on every platform of :data:`PLATFORMS`.

    ``energies[platform][j]`` belongs to ``names[j]``. ``spikes_scale`` / ``latency_scale``
    are the divisors of ``N`` and ``L`` (see :func:`energy_table`).
    """

    names: tuple[str, ...]
    spikes: np.ndarray
    latency: np.ndarray
    normalization: str
    spikes_scale: float
    latency_scale: float
    energies: dict[str, np.ndarray]

    def energy_of(self, name: str, platform: str) -> float:
        return float(self.energies[platform][self._index(name)])

    def improvement(self, name: str, reference: str, platform: str) -> float:
        """Energy saved by ``name`` relative to ``reference``: ``1 - E_name / E_reference``
        (the paper's "energy efficiency improved by about 80 %")."""
        return 1.0 - self.energy_of(name, platform) / self.energy_of(reference, platform)

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no method named {name!r}; the table holds {list(self.names)}")
        return self.names.index(name)

    def to_table(self, title: str = "") -> Table:
        plats = list(self.energies)
        cols = ("method", "spikes", "latency", *(f"E {p}" for p in plats))
        rows = [
            (n, float(self.spikes[j]), float(self.latency[j]), *(float(self.energies[p][j]) for p in plats))
            for j, n in enumerate(self.names)
        ]
        return Table(cols, tuple(rows), title)


def energy_table(methods: Iterable[tuple[str, float, float]], normalization: str = "max") -> EnergyTable:
    r"""Eq. 25 for several methods, normalized, on TrueNorth and SpiNNaker.

    Parameters
    ----------
    methods : iterable of (name, spikes, latency)
        ``spikes`` per image and ``latency`` in steps (rows without a spike count must be left out).
    normalization : {"max", "millions", "sum", "none"}
        How ``N`` and ``L`` are made comparable before weighting:

        * ``"max"`` (default): each divided by its maximum over ``methods``,
          :math:`E_m = E_i N_m / \max_j N_j + E_l L_m / \max_j L_j`;
        * ``"millions"``: ``N`` in the unit the paper's tables print it, :math:`10^6` spikes, and
          ``L`` in steps, :math:`E_m = E_i N_m / 10^6 + E_l L_m`;
        * ``"sum"``: each divided by its sum over ``methods``;
        * ``"none"``: raw eq. 25 (spikes in the millions swamp latencies in the hundreds).

    Notes
    -----
    The paper says only that the estimates were "normalized". Two readings reproduce its claim
    of "about 80 %" on VGG16: ``"max"`` (83.4 % TrueNorth, 82.3 % SpiNNaker on Table 2; 80.8 % and
    79.7 % on Table 3) and ``"millions"`` (84.1 % and 84.1 %; 81.5 % and 81.4 %). In both the
    latency dominates, and the latency ratio alone, ``1 - 108/680 = 84.1 %`` (Table 2), is the
    paper's "about 80 %" for latency. Raw eq. 25 (``"none"``) makes SC-TTFS (2.5x the spikes)
    about 150 % costlier, and ``"max"`` over the two methods alone gives 34.6 % (TrueNorth) and
    -13.9 % (SpiNNaker) on Table 2. ``analysis/README.md`` lists every variant, computed by
    ``analysis/write_tables.py``.
    """
    rows = [(str(n), float(s), float(lat)) for n, s, lat in methods]
    if not rows:
        raise ValueError("energy_table needs at least one (name, spikes, latency) row")
    names = tuple(r[0] for r in rows)
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique (got {list(names)})")
    spikes = np.array([r[1] for r in rows])
    latency = np.array([r[2] for r in rows])
    if not (np.all(np.isfinite(spikes)) and np.all(np.isfinite(latency))):
        raise ValueError("spikes and latency must be finite numbers; leave out methods without a spike count")
    if normalization == "max":
        s_scale, l_scale = float(spikes.max()), float(latency.max())
    elif normalization == "millions":
        s_scale, l_scale = 1e6, 1.0
    elif normalization == "sum":
        s_scale, l_scale = float(spikes.sum()), float(latency.sum())
    elif normalization == "none":
        s_scale, l_scale = 1.0, 1.0
    else:
        raise ValueError(f"normalization must be 'max', 'millions', 'sum' or 'none' (got {normalization!r})")
    if s_scale <= 0 or l_scale <= 0:
        raise ValueError("spikes and latency must not all be zero")
    energies = {
        p: np.asarray(energy(spikes, latency, p, spikes_scale=s_scale, latency_scale=l_scale))
        for p in PLATFORMS
    }
    return EnergyTable(names, spikes, latency, normalization, s_scale, l_scale, energies)


# --------------------------------------------------------------------------------------------
# The paper's comparison tables (Tables 2 and 3) as data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodResult:
    """One row of the paper's Table 2 or 3. Missing numbers are ``None``.

    ``latency_lower_bound`` is True where the paper prints "more than" (大于) the latency.
    ``spikes`` is per image (not in millions).
    """

    table: int
    dataset: str
    network: str
    method: str
    ref: int | None
    ann_acc: float | None
    snn_acc: float | None
    loss: float | None
    latency: float | None
    latency_lower_bound: bool
    spikes: float | None
    note: str

    @property
    def label(self) -> str:
        return f"{self.method} [{self.ref}]" if self.ref is not None else self.method


def _num(x: str) -> float | None:
    x = x.strip()
    return None if x == "" else float(x)


def load_method_results(path: str | Path) -> tuple[MethodResult, ...]:
    """Read the paper's Tables 2-3 from a CSV file (``figures/data/paper_tables.csv``).

    Columns: ``table, dataset, network, method, ref, ann_acc, snn_acc, loss, latency,
    spikes_millions, note``; an empty cell is a missing number, a latency written ``>512`` is a
    lower bound, ``spikes_millions`` is the paper's count in units of 10^6.
    """
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for line_no, rec in enumerate(csv.DictReader(fh), start=2):
            try:
                lat = rec["latency"].strip()
                bound = lat.startswith(">")
                spikes_m = _num(rec["spikes_millions"])
                out.append(
                    MethodResult(
                        table=int(rec["table"]),
                        dataset=rec["dataset"].strip(),
                        network=rec["network"].strip(),
                        method=rec["method"].strip(),
                        ref=int(rec["ref"]) if rec["ref"].strip() else None,
                        ann_acc=_num(rec["ann_acc"]),
                        snn_acc=_num(rec["snn_acc"]),
                        loss=_num(rec["loss"]),
                        latency=_num(lat.lstrip(">")),
                        latency_lower_bound=bound,
                        spikes=None if spikes_m is None else spikes_m * 1e6,
                        note=(rec.get("note") or "").strip(),
                    )
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}, line {line_no}: cannot read the row {rec!r} ({exc})") from exc
    return tuple(out)


def method_energy_table(results: Sequence[MethodResult], normalization: str = "max") -> EnergyTable:
    """:func:`energy_table` of the rows that have both a spike count and an exact latency,
    named ``"<network> <method> [ref]"``."""
    rows = [
        (f"{r.network} {r.label}", r.spikes, r.latency)
        for r in results
        if r.spikes is not None and r.latency is not None and not r.latency_lower_bound
    ]
    return energy_table(rows, normalization)
