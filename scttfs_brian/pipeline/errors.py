"""The failures an experiment reports to its user (``scttfs`` maps each to a message and an exit
code in one place, :func:`scttfs_brian.cli.exit_code`)."""

from __future__ import annotations

__all__ = ["UsageError", "CheckFailed", "RunBusy", "StaleArtifact"]


class UsageError(Exception):
    """A problem the user can fix (missing data, missing run files, mismatched configuration, an
    artifact another command made with other settings): printed without a traceback, exit code 2."""


class CheckFailed(Exception):
    """A verification failed (e.g. Brian2 and the torch engine disagree): exit code 1."""


class RunBusy(Exception):
    """Another process holds the run directory's lock (one writer per run directory): exit code 1.
    The message names the holder's pid and command."""


class StaleArtifact(UsageError):
    """An artifact was made from inputs that have changed since (e.g. ``ann.pt`` retrained with
    another seed after the conversion): using it would silently mix two experiments."""
