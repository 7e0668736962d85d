# One command each: `make demo` runs the main job on embedded defaults, `make test` runs every check.
# Both set themselves up (virtualenv, torch, the project, the search engines) on a fresh machine.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: lock setup demo test test-extended lint typecheck unit integration stop clean-engines

$(STAMP): setup.cfg pyproject.toml workshop/setup.cfg constraints.txt
	@echo "== setting up $(VENV): pip, then the project with its [dev] extras and the workshop (local nodes, runners, demo), every version pinned by constraints.txt"
	@echo "   (torch comes from PyPI, whose Linux wheels carry the CUDA libraries: about 4 GB installed, also on CPU-only machines)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -c constraints.txt --upgrade pip
	$(PY) -m pip install --progress-bar off -c constraints.txt -e ".[dev]" -e ./workshop
	touch $(STAMP)
	@echo "== $(VENV) ready (activate it, or call $(VENV)/bin/splade-es)"

setup: $(STAMP)

demo: setup
	$(PY) -m splade_es_workshop.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy splade_es pipelines training benchmarks workshop/splade_es_workshop tests

unit: setup
	$(PY) -m pytest -m "not engine and not runner" -q $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest -m "engine or runner" -q $(PYTEST_ARGS)

test: lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)
	@echo "note: the engine nodes the tests started stay up for the next run (~750 MB each): make stop"

# The long cluster fault drills (rolling restart, paused node) on top of the cluster tests.
test-extended: setup
	$(PY) -m pytest -q -m cluster --extended $(PYTEST_ARGS)

stop: setup
	-$(VENV)/bin/splade-es engine stop --engine opensearch
	-$(VENV)/bin/splade-es engine stop --engine elasticsearch
	-$(VENV)/bin/splade-es engine stop --engine opensearch --nodes 3 --port 9400

clean-engines: stop

# Refresh the pins on purpose: resolve the newest versions in a scratch venv, rewrite constraints.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --progress-bar off --upgrade pip
	.lock-venv/bin/python -m pip install --progress-bar off -e ".[dev]"
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/python -m pip freeze --all --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv
	@echo "constraints.txt refreshed: run make test, then commit it"
