"""Experiments: the run directory, the stages, the demo and the train/convert/simulate commands,
and their reports. ``scttfs_brian.cli`` only parses options and prints.

* :mod:`.rundir`: :class:`Run` (one writer per directory: an OS lock; atomic writes, stage log,
  provenance of every output, stored configuration, ``--resume``); :data:`.rundir.STAGE_HOOK` is
  called after every stage;
* :mod:`.stages`: data set, ANN, training, fine-tuning, conversion, simulation stages;
* :mod:`.commands`: what ``scttfs train`` / ``convert`` / ``simulate`` do;
* :mod:`.demo`: :class:`DemoConfig` and :func:`run_demo`;
* :mod:`.report`: markdown tables, energy (eq. 25), the Brian2 verdict, figures;
* :mod:`.errors`: :class:`UsageError`, :class:`CheckFailed`, :class:`RunBusy`,
  :class:`StaleArtifact` (what the CLI turns into messages and exit codes);
* :mod:`.cluster`: grid points as Dask tasks, and the cluster the CLI opens.

The modules import torch and Brian2 inside their functions: importing the package (``scttfs --help``)
loads neither.
"""

from .demo import QUICK, DemoConfig, DemoOutcome, run_demo
from .errors import CheckFailed, RunBusy, StaleArtifact, UsageError
from .rundir import Run, atomic_write
from .stages import DATASETS, KINDS, MODELS

__all__ = [
    "Run",
    "atomic_write",
    "DemoConfig",
    "DemoOutcome",
    "run_demo",
    "QUICK",
    "UsageError",
    "CheckFailed",
    "RunBusy",
    "StaleArtifact",
    "KINDS",
    "DATASETS",
    "MODELS",
]
