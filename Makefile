# Two commands for a new user: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean browser

setup: $(STAMP)

# torch is installed first and pinned (the CPU wheel), so that no dependency can pull a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps qpth
	touch $(STAMP)

demo: setup
	$(VENV)/bin/gradfolio demo --out runs/demo

# Headless Chromium for the report's browser test (skipped without it); needs root for apt-get.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium) || \
		echo "chromium not installed (apt-get needs root); the browser test will be skipped"

test: setup browser
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: setup
	$(PIP) install --quiet --no-deps deepdow
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs mlruns mlflow.db .pytest_cache
