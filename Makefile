# Two commands for a new user: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean browser

setup: $(STAMP)

# torch is installed first and pinned; constraints.txt keeps every later install from replacing
# it (a newer torch from an index may be a multi-GB CUDA build). pip takes torch 2.13.0 from the
# indexes it is configured with (on the project's machines: the CPU wheel on disk); elsewhere
# pass the CPU index, e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gradfolio needs Python 3.11+; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_FROM) torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
	$(PIP) install --quiet -c constraints.txt --no-deps qpth
	$(PY) -c 'import torch; assert torch.__version__.startswith("2.13.0"), torch.__version__; print("torch", torch.__version__, "CUDA build" if torch.version.cuda else "CPU build")'
	@echo "compiling the QP and hedging kernels (once per installation, ~40 s)"
	OMP_NUM_THREADS=1 $(PY) -c 'from gradfolio.solvers.qp import compiled, l1_active_set; compiled.warm(); l1_active_set.warm(); from gradfolio.hedging import _book_kernels; _book_kernels.warm()'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/gradfolio demo --out runs/demo

# Headless Chromium for the report's browser test; needs root for apt-get. Without it the test is
# skipped, except where GRADFOLIO_REQUIRE_BROWSER=1 (CI sets it), where it fails.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium) || \
		echo "chromium not installed (apt-get needs root); the browser test will be skipped"

test: setup browser
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: setup
	$(PIP) install --quiet -c constraints.txt --no-deps deepdow
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs mlruns mlflow.db .pytest_cache
