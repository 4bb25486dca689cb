"""Every ```python snippet of README.md runs, exactly as written, in the order the README shows
them (later snippets use the names earlier ones define, as a reader's session would).

Snippets that build a compiled program (``cpp_standalone``) take minutes here: they run in the
slow test, which runs every snippet; the default suite runs all the others."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^(?P<indent>[ ]*)```python\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def snippets() -> list[tuple[int, str]]:
    """(line number, dedented source) of each python snippet, in README order."""
    text = README.read_text()
    out = []
    for m in FENCE.finditer(text):
        indent = len(m.group("indent"))
        body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
        out.append((text[: m.start()].count("\n") + 1, body))
    return out


def compiles_a_program(source: str) -> bool:
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())  # comments aside
    return "cpp_standalone" in code or ".compile(" in code


def run_snippets(include_programs: bool, tmp_path, monkeypatch) -> int:
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for line, source in snippets():
        if compiles_a_program(source) and not include_programs:
            continue
        try:
            exec(compile(source, f"README.md:{line}", "exec"), namespace)
        except Exception as err:  # name the snippet: the traceback's file is README.md:<line>
            raise AssertionError(f"the README snippet at line {line} failed: {err!r}") from err
        ran += 1
    return ran


def test_readme_has_snippets():
    found = snippets()
    assert len(found) >= 4, f"found {len(found)} python snippets in README.md"
    assert sum(not compiles_a_program(s) for _, s in found) >= 3


@pytest.mark.cython
def test_readme_snippets_run(tmp_path, monkeypatch):
    assert run_snippets(False, tmp_path, monkeypatch) == sum(not compiles_a_program(s) for _, s in snippets())


@pytest.mark.slow
@pytest.mark.standalone
def test_readme_snippets_run_with_compiled_programs(tmp_path, monkeypatch):
    assert run_snippets(True, tmp_path, monkeypatch) == len(snippets())


def test_readme_study_block_is_generated_from_the_committed_study():
    """The README's headline numbers are the study's: the block equals what the summary script
    writes from analysis/results/digits_study.json."""
    import json

    from scttfs_brian.pipeline.study_summary import README_BEGIN, README_END, readme_block

    study = json.loads((README.parent / "analysis" / "results" / "digits_study.json").read_text())
    text = README.read_text()
    block = text[text.index(README_BEGIN) : text.index(README_END) + len(README_END)]
    assert block == readme_block(study), "rerun: python -m scttfs_brian.pipeline.study_summary --readme README.md"
    assert len(study["config"]["seeds"]) >= 5 and study["brian_checks"]
    assert all(check["identical"] for check in study["brian_checks"])
