# physsim — the two commands a new user types are `make train` and `make test`;
# each installs what it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= experiments/tiny.py
ARGS ?=

.PHONY: install test train validate bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,warp]'
	sh scripts/install-gl.sh
	touch $(STAMP)

install: $(STAMP)

# The Warp tests get their own process: Warp loads its own LLVM, and XLA compiling in the
# same process afterwards crashed (see tests/test_warp.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/test_warp.py
	$(BIN)/python -m pytest -q tests/test_warp.py

validate: $(STAMP)
	$(BIN)/python -m physsim.validate --json out/validate.json

# Trains CONFIG (default: the tiny CPU run) into runs/<name>/; ARGS overrides values, e.g.
# make train ARGS="--train.steps=50". A run that exists resumes from its latest checkpoint.
train: $(STAMP)
	$(BIN)/python -m physsim.train --config $(CONFIG) $(ARGS)

# Throughput of every stage and the ratio to the conventional pipeline; ARGS e.g. "--quick".
bench: $(STAMP)
	$(BIN)/python -m physsim.bench $(ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache
