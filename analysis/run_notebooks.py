"""Execute the analysis notebooks and write executed copies with their outputs.

The notebooks are jupytext percent scripts, ``analysis/notebooks/*.py``: plain Python files with
``# %%`` cell markers, which Jupyter opens as notebooks (``.venv/bin/jupyter lab``, then open the
``.py`` file: "Open With > Jupytext Notebook"). Each is read with jupytext, executed with
nbclient on the ``python3`` kernel of the running interpreter, and written as
``<outdir>/<name>.ipynb`` atomically (temporary file + ``os.replace``). The copies carry no
timing metadata, so rerunning an unchanged notebook changes only what its outputs change.

Run from anywhere: ``.venv/bin/python analysis/run_notebooks.py`` (``make notebooks``) writes
``analysis/executed/``; ``--out DIR`` writes elsewhere, names restrict to some notebooks
(``error_bounds energy``). ``tests/test_notebooks.py`` uses :func:`execute` the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"
EXECUTED = HERE / "executed"
#: Seconds one cell may run before nbclient gives up.
CELL_TIMEOUT = 600


def notebooks() -> list[Path]:
    """The notebook sources, ``analysis/notebooks/*.py``, sorted by name."""
    return sorted(NOTEBOOKS.glob("*.py"))


def execute(source: Path, workdir: Path, timeout: int = CELL_TIMEOUT) -> nbformat.NotebookNode:
    """Read the percent script ``source``, execute it with ``workdir`` as working directory and
    return the notebook with its outputs. A cell that raises stops the run with
    ``nbclient.exceptions.CellExecutionError`` (its message names the cell and the error)."""
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return nb


def write_atomic(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all in analysis/notebooks/)")
    parser.add_argument("--out", type=Path, default=EXECUTED, help=f"output folder (default {EXECUTED})")
    args = parser.parse_args(argv)
    sources = notebooks()
    if args.names:
        known = {p.stem: p for p in sources}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            parser.error(f"no notebook named {unknown}; notebooks are {sorted(known)}")
        sources = [known[n] for n in args.names]
    for source in sources:
        start = time.perf_counter()
        nb = execute(source, NOTEBOOKS)
        path = args.out / f"{source.stem}.ipynb"
        write_atomic(nb, path)
        print(f"{path} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
