# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv with Python 3.11 and install from constraints.txt (the one set of pins).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU wheel of torch that the pins name lies in /opt/wheels on the development machines.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: demo test test-all test-fast figures notebooks benchmarks lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(FIND_LINKS) -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scttfs demo

# the multi-seed study (10 seeds, SC-TTFS and TTFS, T = 1..6; its time is in analysis/results/digits_study.md;
# an interrupted study resumes where it stopped)
study: $(STAMP)
	$(BIN)/scttfs study --out analysis/results/digits_study.json

# the suite CI runs (< 10 min here, set-up included); `make test-all` adds the tests marked slow
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not cython and not standalone"

figures: $(STAMP)
	$(BIN)/python -m figures

# execute analysis/notebooks/*.py (jupytext percent scripts); executed copies with outputs go to
# analysis/executed/*.ipynb (written atomically; commit them so the results read on the web)
notebooks: $(STAMP)
	$(BIN)/python analysis/run_notebooks.py

# heavy measurements (tens of minutes); each writes benchmarks/results/<name>.md and .json
benchmarks: $(STAMP)
	$(BIN)/python benchmarks/brian_throughput.py
	$(BIN)/python benchmarks/cifar_brian.py
	$(BIN)/python benchmarks/twin_vs_ann.py
	$(BIN)/python benchmarks/compiled_program.py
	$(BIN)/python benchmarks/distributed_scaling.py
	$(BIN)/python benchmarks/readme_tables.py --readme README.md

lint: $(STAMP)
	$(BIN)/ruff check scttfs_brian tests figures benchmarks analysis

clean:
	rm -rf $(VENV) figures/out/*.png figures/out/*.pdf
