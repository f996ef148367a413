# The README's two commands: `make run` (set up + open the dashboard) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8501
# pytest-xdist workers for `make test` (0: none). Fresh clone of the same code on 2 cores, idle:
# pytest 765 s with 2 workers against 1125 s serial. --dist loadfile keeps each test file on one
# worker, so a module-scoped fixture (a Ray cluster, test_matrix's converted models) is built once.
# WORKERS=0 runs serially (what the loaded CI check last ran: 1634 s under a busy loop on both cores).
WORKERS ?= 2

.PHONY: setup run lint test test-fast samples benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "optim needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# constraints.txt pins every dependency to the versions the suite passes with. --no-compile:
	# byte-compiling all ~21,000 installed modules costs about a minute; Python compiles the few
	# it imports on first use instead.
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	@echo "optim dashboard on http://127.0.0.1:$(PORT) (bound to 127.0.0.1 only)"
	$(VENV)/bin/streamlit run app/streamlit_app.py --server.address 127.0.0.1 --server.port $(PORT)

# ruff (lint + import order) and mypy (types of optim/) run before the tests: fail fast.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -n $(WORKERS) --dist loadfile

test-fast: setup
	$(PY) -m pytest -m "not e2e and not slow"

samples: setup
	$(PY) sample_models/build.py

benchmarks: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
