"""The README's Performance and Scaling-up numbers are the committed benchmark results': each
generated block equals what benchmarks/readme_tables.py writes from benchmarks/results/*.json,
and a stale block is caught."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def copy(tmp_path, tables):
    """A copy of the README and of the JSON files the blocks read, laid out as in the repository."""
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    for name in {s for b in tables.BLOCKS.values() for s in b.sources}:
        shutil.copy(RESULTS / f"{name}.json", tmp_path / "benchmarks" / "results")
    shutil.copy(README, tmp_path / "README.md")
    return tmp_path


def args(root: Path, *extra: str) -> list[str]:
    return ["--readme", str(root / "README.md"), "--results", str(root / "benchmarks" / "results"), *extra]


def test_readme_blocks_are_generated_from_the_committed_results(tables):
    text = README.read_text()
    results, paths = tables.load_results(RESULTS, README)
    assert set(tables.BLOCKS) == {"performance table", "scaling table", "compiled program", "twin table", "dask scaling"}
    for b in tables.BLOCKS.values():
        assert text.count(b.begin) == 1 and text.count(b.end) == 1, f"README.md lacks the {b.name!r} markers"
    assert tables.rewrite(text, results, paths) == text, (
        "rerun: python benchmarks/readme_tables.py --readme README.md"
    )
    # each block names its files, scripts and machine; the README's numbers are the JSON's
    for name, data in results.items():
        how = f"command `{data['command']}`" if data.get("command") else f"script `benchmarks/{name}.py`"
        assert f"`benchmarks/results/{name}.json` ({how}" in text and data["machine"] in text
    resnet = next(r for r in results["cifar_brian"]["rows"] if r["key"].startswith("resnet20-shared-4"))
    assert (
        f"| **{resnet['s_per_image']:.2f}** |" in text
        and f"| **{resnet['bytes_per_synapse']:.1f}** |" in text
    )
    for r in results["compiled_program"]["rows"]:
        assert f"x{r['speedup_per_batch']:.0f} per batch" in text
    assert "106 s" not in text and "3.5 s per image" not in text  # an earlier run no JSON records


def test_a_stale_block_is_detected_and_rewritten(tables, copy, capsys):
    assert tables.main(args(copy, "--check")) == 0
    readme = copy / "README.md"
    fresh = readme.read_text()
    stale = fresh.replace("| **0.20** |", "| **0.19** |", 1)
    assert stale != fresh
    readme.write_text(stale)
    assert tables.main(args(copy, "--check")) == 1
    out = capsys.readouterr().out
    assert "-| ResNet20 | cpp_standalone, generated connectivity" in out and "**0.19**" in out
    assert "is stale: run `python benchmarks/readme_tables.py --readme README.md`" in out
    assert readme.read_text() == stale  # --check writes nothing
    assert tables.main(args(copy)) == 0
    assert readme.read_text() == fresh


def test_a_changed_result_changes_the_block(tables, copy):
    path = copy / "benchmarks" / "results" / "compiled_program.json"
    data = json.loads(path.read_text())
    resnet = next(r for r in data["rows"] if r["model"] == "resnet20")
    resnet["speedup_per_batch"] = 12.4
    data["command"] = "python benchmarks/compiled_program.py --batches 3"
    path.write_text(json.dumps(data))
    assert tables.main(args(copy, "--check")) == 1
    assert tables.main(args(copy)) == 0
    text = (copy / "README.md").read_text()
    assert "x12 per batch" in text and "x75 per batch" not in text
    assert "(command `python benchmarks/compiled_program.py --batches 3`; seeds not recorded)" in text
    assert tables.main(args(copy, "--check")) == 0


def test_missing_markers_are_refused_with_the_lines_to_add(tables, copy, capsys):
    readme = copy / "README.md"
    readme.write_text(readme.read_text().replace("<!-- end of scaling table -->\n", ""))
    assert tables.main(args(copy, "--check")) == 2
    err = capsys.readouterr().err
    assert "has no 'scaling table' block: add the lines '<!-- scaling table: python benchmarks/" in err
