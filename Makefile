# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 is a local CPU wheel; installing it later lets pip pull GBs of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crystal-data demo --out build/demo-store
	$(BIN)/crysgnn demo --store build/demo-store --out build/demo-models

test: $(STAMP)
	$(BIN)/ruff check crystal_data crysgnn_models flows tests benchmarks
	$(BIN)/pytest

clean:
	rm -rf build .pytest_cache .ruff_cache
