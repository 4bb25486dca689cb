"""The layout of docs/architecture.md, checked on the source: imports point one way, the two
engines never import each other, and no private name crosses a subpackage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scttfs_brian"

#: What each part of the package may import (the arrows of docs/architecture.md). The facade
#: ``network`` calls the engines, inside its methods only (checked below).
ALLOWED = {
    "coding": set(),
    "graph": {"coding"},
    "results": set(),
    "data": set(),
    "models": set(),
    "torch": {"coding", "graph", "results"},
    "brian": {"coding", "graph", "results"},
    "network": {"graph", "results", "torch", "brian"},
    "conversion": {"coding", "graph", "torch", "network"},
    "training": {"coding", "graph", "torch", "conversion", "network", "results", "data"},
    "analysis": {"coding", "graph", "torch", "conversion", "network", "results", "data", "models", "training"},
    "pipeline": {"coding", "graph", "torch", "brian", "conversion", "training", "network", "results",
                 "analysis", "data", "models"},
    "cli": {"pipeline", "coding", "graph", "results", "network", "data", "models", "analysis", "brian"},
    "__init__": {"coding", "conversion", "network", "results"},
}  # fmt: skip
#: The facade's engine imports are lazy (inside methods): importing the facade imports no engine.
LAZY_ONLY = {("network", "torch"), ("network", "brian")}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imports(path: Path):
    """(part imported, names, at module level?) for every import of the package in ``path``."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE)
    here = list(("scttfs_brian", *rel.parts[:-1]))
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = [*base, *(node.module.split(".") if node.module else [])]
            else:
                module = node.module.split(".")
            if module[0] != "scttfs_brian":
                continue
            names = [a.name for a in node.names]
            if len(module) == 1:  # from scttfs_brian import x / from . import x
                for name in names:
                    yield name, [], id(node) in top_level
            else:
                yield module[1], names, id(node) in top_level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "scttfs_brian" and len(parts) > 1:
                    yield parts[1], [], id(node) in top_level


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_part_is_listed():
    parts = {_part(p) for p in SOURCES}
    assert parts <= set(ALLOWED), f"parts missing from the architecture: {sorted(parts - set(ALLOWED))}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    part = _part(path)
    for target, _names, top in _imports(path):
        if target == part:
            continue
        assert target in ALLOWED[part], f"{path.name} ({part}) imports {target}: not an arrow of the architecture"
        if (part, target) in LAZY_ONLY:
            assert not top, f"{path.name} imports the engine {target} at module level; the facade imports lazily"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_crosses_a_subpackage(path):
    part = _part(path)
    for target, names, _ in _imports(path):
        if target == part:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.name} ({part}) imports private names {private} from {target}"


def test_the_engines_never_import_each_other():
    for path in SOURCES:
        part = _part(path)
        if part in ("brian", "torch"):
            other = "torch" if part == "brian" else "brian"
            assert other not in {t for t, _, _ in _imports(path)}, f"{path} imports the {other} engine"


def test_tests_use_public_seams():
    """No test imports a private name of the package."""
    for path in sorted((PACKAGE.parent / "tests").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scttfs_brian"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.name} imports private names {private} from {node.module}"
