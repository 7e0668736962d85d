# One command each: `make demo` runs the main job on embedded defaults, `make test` runs every check.
# Both set themselves up (virtualenv, torch, the project, the search engines) on a fresh machine.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck unit integration stop clean-engines

$(STAMP): setup.cfg pyproject.toml
	@echo "== setting up $(VENV): pip, torch (CPU, ~200 MB), the project with its [dev] extras"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --upgrade pip
	$(PY) -m pip install --progress-bar off "torch==$(TORCH_VERSION)" || $(PY) -m pip install --progress-bar off torch
	$(PY) -m pip install --progress-bar off -e ".[dev]"
	touch $(STAMP)
	@echo "== $(VENV) ready (activate it, or call $(VENV)/bin/splade-es)"

setup: $(STAMP)

demo: setup
	$(PY) -m splade_es.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy splade_es tests

unit: setup
	$(PY) -m pytest -m "not engine and not runner" -q $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest -m "engine or runner" -q $(PYTEST_ARGS)

test: lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)
	@echo "note: the engine nodes the tests started stay up for the next run (~750 MB each): make stop"

stop: setup
	-$(VENV)/bin/splade-es engine stop --engine opensearch
	-$(VENV)/bin/splade-es engine stop --engine elasticsearch
	-$(VENV)/bin/splade-es engine stop --engine opensearch --nodes 3 --port 9400

clean-engines: stop
