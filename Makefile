# One command each: `make demo` runs the main job on embedded defaults, `make test` runs every check.
# Both set themselves up (virtualenv, torch, the project, the search engine) on a fresh machine.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck unit integration clean-engines

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m splade_es.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy splade_es pipelines training benchmarks tests

unit: setup
	$(PY) -m pytest -m "not engine" -q

integration: setup
	$(PY) -m pytest -m engine -q

test: lint typecheck
	$(PY) -m pytest -q

clean-engines:
	-$(VENV)/bin/splade-es engine stop --engine opensearch
	-$(VENV)/bin/splade-es engine stop --engine elasticsearch
