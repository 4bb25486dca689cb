"""Every analysis notebook (a jupytext percent script in ``analysis/notebooks/``) executes without
error, in a temporary folder: edit the notebooks freely, the suite only checks that they run."""

import importlib.util
import time
from pathlib import Path

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("jupytext")

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
_spec = importlib.util.spec_from_file_location("run_notebooks", ANALYSIS / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)

NOTEBOOKS = run_notebooks.notebooks()
#: Notebooks that take more than 60 s on one core (deselected by ``make test``).
SLOW: set[str] = set()


def test_the_analysis_notebooks_are_there():
    names = {p.stem for p in NOTEBOOKS}
    assert names >= {"error_bounds", "network_errors", "code_capacity", "energy"}


@pytest.mark.parametrize(
    "source",
    [pytest.param(p, marks=[pytest.mark.slow] if p.stem in SLOW else []) for p in NOTEBOOKS],
    ids=[p.stem for p in NOTEBOOKS],
)
def test_notebook_executes(source, tmp_path):
    start = time.perf_counter()
    nb = run_notebooks.execute(source, tmp_path, timeout=300)  # raises on the first failing cell
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the notebook printed nothing"
    run_notebooks.write_atomic(nb, tmp_path / f"{source.stem}.ipynb")
    assert (tmp_path / f"{source.stem}.ipynb").stat().st_size > 0
    print(f"{source.stem}: {time.perf_counter() - start:.1f} s")


def test_executed_copy_is_written_atomically(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    path = tmp_path / "sub" / "x.ipynb"
    run_notebooks.write_atomic(nb, path)
    assert nbformat.read(path, as_version=4).cells[0].source == "1 + 1"
    assert [p.name for p in path.parent.iterdir()] == ["x.ipynb"]  # no temporary file left
