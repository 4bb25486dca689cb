"""The run directory: one writer (a lock), atomic writes, the stage log, provenance, the stored
configuration and ``--resume``.

Every experiment writes into one directory:

* ``config.json``: the resolved configuration of each command run there (one section per command);
* ``checkpoints/``: training states, written after every epoch (``torch.save``; read back with
  ``torch.load(..., weights_only=True)``);
* the outputs of each stage (``ann.pt`` state_dicts, ``snn-*.npz`` networks, ``sim-*.npz`` results,
  ``*.json``), each written atomically (a temporary file, then ``os.replace``), so a file that exists
  is complete;
* ``provenance.json``: for every stage output, the command and settings that made it, the sha256 of
  the upstream artifacts it was made from, and its own sha256;
* ``metrics.json``, ``report.md`` and ``figures/``; ``log.txt`` lists what each stage did;
* ``.lock``: the pid and command line of the process writing (see below).

**One writer.** Opening a :class:`Run` takes an OS file lock (``fcntl.flock`` on ``.lock``) held
until :meth:`Run.close` (the end of the command); a second process opening the same directory is
refused at once with :class:`~.errors.RunBusy`, naming the holder's pid and command. Within one
process the lock is shared (the demo opens the directory once; tests open it several times).

**Provenance.** A stage declares its ``settings`` and the ``upstream`` artifacts it reads. Before it
runs, :meth:`Run.stage` compares them with the record of each existing output:

* the same settings and upstream: with ``resume`` the stage is skipped, otherwise it runs again;
* made by *another* command with other settings (e.g. ``scttfs convert --T 3`` into a demo's run
  directory, whose ``snn-sc-ttfs-T3.npz`` the demo made from other kernels): refused
  (:class:`~.errors.UsageError`), nothing is overwritten;
* an upstream artifact changed since (e.g. ``ann.pt`` retrained): the stage runs again, and the
  log says the output was stale.

A command that reads an artifact without making it (``scttfs simulate`` reads ``snn-*.npz``) calls
:meth:`Run.require_current`, which refuses one whose upstream changed since
(:class:`~.errors.StaleArtifact`).

With ``resume=True`` a stage whose outputs exist and are current is skipped (``log.txt`` says
"skipped") and the configuration must match the one stored; without it every stage runs again and
overwrites its own outputs. :meth:`Run.stage` is the one place where a stage runs or is skipped.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import RunBusy, StaleArtifact, UsageError

__all__ = ["Run", "atomic_write", "STAGE_HOOK", "LOCK_FILE", "PROVENANCE_FILE", "file_sha256", "to_json"]

#: Called after every finished (or skipped) stage with ``(run, stage_name)``, and after the demo's
#: report with ``(run, "report")``; tests set it to simulate an interruption.
STAGE_HOOK: Callable[[Any, str], None] | None = None

#: The lock file in every run directory (pid and command line of the writer).
LOCK_FILE = ".lock"
#: The provenance record of every stage output.
PROVENANCE_FILE = "provenance.json"

#: Locks held by this process: resolved directory -> [open lock file, number of Runs using it].
_HELD: dict[Path, list] = {}


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` and ``os.replace``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_json(obj: Any) -> Any:
    """``obj`` as plain JSON data (numpy scalars and arrays, paths converted)."""
    return json.loads(json.dumps(obj, default=_json_default))


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _settings_key(settings: Any, upstream: dict) -> str:
    text = json.dumps({"settings": to_json(settings), "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _first(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:  # pragma: no cover
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def _command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"


def _unusable(directory: Path, err: OSError) -> UsageError:
    """The run directory cannot be used (a file, read-only, no permission): what to do."""
    if isinstance(err, (FileExistsError, NotADirectoryError)) or err.errno in (errno.EEXIST, errno.ENOTDIR):
        why = "is a file (or lies under one), not a directory"
    elif err.errno == errno.EROFS:
        why = "is on a read-only file system"
    elif err.errno in (errno.EACCES, errno.EPERM):
        why = "is not writable (permission denied)"
    elif err.errno == errno.ENOSPC:
        why = "is on a full disk"
    else:
        why = f"cannot be written ({err.strerror or err})"
    return UsageError(f"the run directory {directory} {why}; pass a writable directory with --run-dir")


class Run:
    """A run directory: the writer's lock, atomic writers, the stage log, provenance and
    ``--resume`` skipping.

    Parameters
    ----------
    directory : path
        Created when missing.
    resume : bool
        Skip stages whose outputs exist and are current; the stored configuration must match.
    progress : bool
        Whether stages show progress bars.
    command : str
        The command writing (the log's prefix, the default ``config.json`` section, the maker
        recorded in ``provenance.json``).
    command_line : str, optional
        Written into the lock file for a second process's refusal (default: ``sys.argv``).

    Raises
    ------
    UsageError
        When the directory cannot be created or written (a file, a read-only file system).
    RunBusy
        When another process holds the directory's lock.
    """

    def __init__(
        self, directory: Path, *, resume: bool, progress: bool, command: str, command_line: str | None = None
    ):
        self.dir = Path(directory)
        self.resume = resume
        self.progress = progress
        self.command = command
        self._locked: Path | None = None
        self._hashes: dict[tuple, str] = {}
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _unusable(self.dir, err) from None
        if not self.dir.is_dir():
            raise _unusable(self.dir, FileExistsError(errno.EEXIST, "exists"))
        self._lock(command_line or _command_line())

    # -- the lock ------------------------------------------------------------------------------
    def _lock(self, command_line: str) -> None:
        key = self.dir.resolve()
        held = _HELD.get(key)
        if held is not None:  # this process holds it already: share it
            held[1] += 1
            self._locked = key
            return
        path = self.dir / LOCK_FILE
        try:
            f = open(path, "a+", encoding="utf-8")
        except OSError as err:
            raise _unusable(self.dir, err) from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise RunBusy(self._holder(path)) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(
                f"pid {os.getpid()}\ncommand {command_line}\nsince {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            )
            f.flush()
        except OSError as err:
            f.close()
            raise _unusable(self.dir, err) from None
        _HELD[key] = [f, 1]
        self._locked = key

    def _holder(self, path: Path) -> str:
        info: dict[str, str] = {}
        for _ in range(20):  # the holder writes its pid right after locking
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            info = dict(line.split(" ", 1) for line in lines if " " in line)
            if "pid" in info:
                break
            time.sleep(0.05)
        return (
            f"the run directory {self.dir} is in use by process {info.get('pid', '?')} "
            f"(`{info.get('command', '?')}`, since {info.get('since', '?')}); wait for it to finish "
            "or pass another --run-dir (one writer per run directory)"
        )

    def close(self) -> None:
        """Release this Run's share of the lock (the lock goes when the last Run of this process
        on the directory closes)."""
        key, self._locked = self._locked, None
        if key is None or key not in _HELD:
            return
        held = _HELD[key]
        held[1] -= 1
        if held[1] <= 0:
            del _HELD[key]
            try:
                fcntl.flock(held[0].fileno(), fcntl.LOCK_UN)
            finally:
                held[0].close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    # -- paths and the log -----------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.dir / name

    def log(self, message: str) -> None:
        print(message, flush=True)
        with open(self.dir / "log.txt", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.command}: {message}\n")

    # -- files --------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n", encoding="utf-8")

        return atomic_write(self.path(name), write)

    def read_json(self, name: str) -> Any:
        """``name`` parsed; a file that is not JSON is a :class:`UsageError` naming it."""
        path = self.path(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UsageError(
                f"{path} is not valid JSON ({err}); it was changed or damaged outside scttfs: restore it, "
                "or delete it and run the command that writes it again"
            ) from None

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write(self.path(name), lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def save_torch(self, name: str, obj: Any) -> Path:
        import torch

        def write(tmp: Path) -> None:
            try:
                torch.save(obj, tmp)
            except RuntimeError as err:  # torch's zip writer: "[enforce fail ...] file write failed"
                if "write" not in str(err):
                    raise
                raise OSError(
                    errno.ENOSPC if _disk_full(tmp) else errno.EIO,
                    f"torch.save could not write ({_first(err)})",
                    str(self.path(name)),
                ) from err

        return atomic_write(self.path(name), write)

    def load_torch(self, name: str) -> Any:
        """``torch.load(..., weights_only=True)``; a file that cannot be read that way (truncated,
        pickled objects) is a :class:`UsageError` naming it."""
        import pickle
        import zipfile

        import torch

        path = self.path(name)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
            lines = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line] or [_first(err)]
            raise UsageError(
                f"{path} cannot be read with torch.load(weights_only=True) ({lines[0].split('. ')[0][:200]}); it is truncated "
                "or holds pickled objects: delete it and run again without --resume"
            ) from None

    def save_figure(self, name: str, fig) -> Path:
        """Write ``fig`` to ``figures/<name>.png`` and close it."""
        import matplotlib.pyplot as plt

        def write(tmp: Path) -> None:
            fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")

        try:
            return atomic_write(self.path(f"figures/{name}.png"), write)
        finally:
            plt.close(fig)

    def update_json(self, name: str, update: dict) -> None:
        current = self.read_json(name) if self.path(name).exists() else {}
        current.update(update)
        self.write_json(name, current)

    # -- configuration -------------------------------------------------------------------------
    def store_config(self, config: dict, section: str | None = None) -> None:
        """Record this command's resolved configuration (under ``section``, default the command);
        on ``--resume`` it must equal the one stored by the interrupted run (otherwise its outputs
        would be mixed with new ones)."""
        section = section or self.command
        stored = self.read_json("config.json") if self.path("config.json").exists() else {}
        if not isinstance(stored, dict):
            raise UsageError(f"{self.path('config.json')} holds a {type(stored).__name__}, not a JSON object; "
                             "delete it and run again without --resume")  # fmt: skip
        old = stored.get(section)
        if self.resume and old is not None:
            new = to_json(config)
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
                raise UsageError(
                    f"--resume with a different configuration than the run in {self.dir} ({detail}); "
                    "repeat the original options, or run without --resume to start over"
                )
        stored[section] = config
        self.write_json("config.json", stored)

    # -- provenance ----------------------------------------------------------------------------
    def sha256(self, name: str) -> str:
        """The sha256 of artifact ``name`` (cached while its size and mtime do not change)."""
        st = self.path(name).stat()
        key = (name, st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(self.path(name))
        return self._hashes[key]

    def provenance(self) -> dict:
        """``provenance.json``: output name -> record (``{}`` when there is none)."""
        if not self.path(PROVENANCE_FILE).exists():
            return {}
        records = self.read_json(PROVENANCE_FILE)
        return records if isinstance(records, dict) else {}

    def _record(self, name: str, outputs: Sequence[str], settings: Any, upstream: dict) -> None:
        records = self.provenance()
        key = _settings_key(settings, upstream)
        for o in outputs:
            records[o] = {"stage": name, "command": self.command, "settings": to_json(settings),
                          "upstream": upstream, "key": key, "sha256": self.sha256(o),
                          "time": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        self.write_json(PROVENANCE_FILE, records)

    def stale_reason(self, name: str, _seen: frozenset = frozenset()) -> str | None:
        """Why artifact ``name`` is stale (an upstream artifact changed or is stale itself, or the
        file changed since it was recorded), or None when it is current or has no record."""
        rec = self.provenance().get(name)
        if rec is None or name in _seen:
            return None
        if not self.path(name).exists():
            return f"{name} is missing"
        if rec.get("sha256") not in (None, self.sha256(name)):
            return f"{name} changed since {rec.get('command')!r} wrote it"
        for up, digest in rec.get("upstream", {}).items():
            if not self.path(up).exists():
                return f"{name} was made from {up}, which is gone"
            if self.sha256(up) != digest:
                return f"{name} was made from another {up} (it changed since: sha256 {digest[:12]} -> {self.sha256(up)[:12]})"
            deeper = self.stale_reason(up, _seen | {name})
            if deeper is not None:
                return f"{name} was made from {up}, and {deeper}"
        return None

    def require_current(self, name: str, remedy: str) -> None:
        """Refuse to use artifact ``name`` when it is stale (:class:`StaleArtifact`, saying
        ``remedy``)."""
        why = self.stale_reason(name)
        if why is not None:
            raise StaleArtifact(f"{self.path(name)} is stale: {why}; {remedy}")

    def _check_outputs(self, name: str, outputs: Sequence[str], settings: Any, upstream: dict) -> str | None:
        """Refuse to overwrite another command's outputs made with other settings; return why the
        existing outputs cannot be reused (None: they are current)."""
        records = self.provenance()
        key = _settings_key(settings, upstream)
        why = None
        for o in outputs:
            rec = records.get(o)
            if not self.path(o).exists():
                why = why or f"{o} is missing"
                continue
            if rec is None or rec.get("key") == key:
                why = why or self.stale_reason(o)
                continue
            if rec.get("command") != self.command and rec.get("settings") != to_json(settings):
                old, new = rec.get("settings") or {}, to_json(settings) or {}
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) if isinstance(
                    old, dict) and isinstance(new, dict) else ["settings"]  # fmt: skip
                raise UsageError(
                    f"{self.path(o)} was made by `scttfs {rec.get('command')}` with other settings "
                    f"(differing: {', '.join(diff)}); refusing to overwrite it. Pass another --run-dir, "
                    f"or delete {o} to replace it"
                )
            changed = [u for u in upstream if rec.get("upstream", {}).get(u) != upstream[u]]
            why = why or (
                f"{o} was made from another {changed[0]}" if changed else f"{o} was made with other settings"
            )
        return why

    # -- stages --------------------------------------------------------------------------------
    def stage(
        self,
        name: str,
        outputs: Sequence[str],
        fn: Callable[[], None],
        *,
        settings: Any = None,
        upstream: Sequence[str] = (),
    ) -> bool:
        """Run stage ``name`` unless resuming and all its ``outputs`` exist and are current (same
        ``settings``, same ``upstream`` artifacts). ``fn`` must write the outputs atomically (the
        last one last); they are then recorded in ``provenance.json``. Returns True when the
        stage ran.

        Raises :class:`UsageError` without running when an output exists that another command
        made with other settings (it is never overwritten)."""
        up = {u: self.sha256(u) for u in upstream}
        why = self._check_outputs(name, outputs, settings, up)
        if self.resume and why is None:
            self.log(f"stage {name}: skipped (output exists: {', '.join(outputs)})")
            ran = False
        else:
            if self.resume and all(self.path(o).exists() for o in outputs):
                self.log(f"stage {name}: outputs are stale ({why}); rebuilding")
            self.log(f"stage {name}: running")
            t0 = time.perf_counter()
            fn()
            missing = [o for o in outputs if not self.path(o).exists()]
            if missing:  # pragma: no cover - a programming error
                raise RuntimeError(f"stage {name} did not write {missing}")
            self._record(name, outputs, settings, up)
            self.log(f"stage {name}: done in {time.perf_counter() - t0:.1f} s")
            ran = True
        self.finished(name)
        return ran

    def finished(self, name: str) -> None:
        """Mark the end of step ``name`` (calls :data:`STAGE_HOOK`)."""
        if STAGE_HOOK is not None:
            STAGE_HOOK(self, name)
