# Set-up is part of every target: a fresh clone needs nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python

.PHONY: demo test lint bench setup setup-dev clean

demo: setup                ## load the real S&P 500 sample, measure its breadth, generate signals
	$(BIN)/breadthflow demo

test: setup-dev            ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup-dev           ## every benchmark; results go to benchmarks/RESULTS.md by hand
	$(BIN)/python benchmarks/lake_ingest.py
	$(BIN)/python benchmarks/breadth.py
	$(BIN)/python benchmarks/scan.py
	$(BIN)/python benchmarks/backtest_sweep.py
	$(BIN)/python benchmarks/backtest_single.py
	$(BIN)/python benchmarks/dispatch.py
	$(BIN)/python benchmarks/api_load.py
	$(BIN)/python benchmarks/dashboard_paint.py
	$(BIN)/python benchmarks/spark_breadth.py --symbols 5000 --cores 2

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8

# Exact versions of every package (transitives included) are in the lock files.
setup: $(BIN)/uv
	$(UV) -r requirements.lock
	$(UV) --no-deps -e .

setup-dev: setup
	$(UV) -r requirements-dev.lock
	@bash scripts/ensure-chromium

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
