# physsim — the two commands a new user types are `make train` and `make test`;
# each installs what it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= experiments/tiny.py
ARGS ?=

.PHONY: install test test-fast train validate audit bench aot gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,warp]'
	sh scripts/install-gl.sh
	touch $(STAMP)

install: $(STAMP)

# Two workers (pytest-xdist); tests sharing an expensive fixture stay on one (tests/conftest.py).
# The Warp tests get their own process: Warp loads its own LLVM, and XLA compiling in the same
# process afterwards crashed (see tests/test_warp.py). It runs beside the workers, its output
# shown at the end: after them it kept one core idle for its ~1.5 min.
test: $(STAMP)
	@log=$$(mktemp); echo "tests/test_warp.py: in its own process, beside the others (output at the end)"; \
	$(BIN)/python -m pytest -q tests/test_warp.py > $$log 2>&1 & warp=$$!; \
	trap 'kill $$warp 2>/dev/null; rm -f $$log' INT TERM; \
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --ignore=tests/test_warp.py; main=$$?; \
	wait $$warp; warp_rc=$$?; echo "tests/test_warp.py:"; cat $$log; rm -f $$log; \
	[ $$main -eq 0 ] && [ $$warp_rc -eq 0 ]

# The edit loop (~2 min on 2 cores from an empty cache): unit tests on tiny layouts and synthetic inputs, config
# and name checks, one traced contract test per family; the tests marked slow (anything that compiles a family's
# rollout, a training step or a larger model, or starts a subprocess: tests/conftest.py) are left out.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow" --ignore=tests/test_warp.py

validate: $(STAMP)
	$(BIN)/python -m physsim.validate --json out/validate.json

# Every template's answer re-derived by an independent route on 512 fresh worlds per family and split
# (MuJoCo C in float64 over twice the rollout, or the segmentation of the frames shown); ~2 h on 2 cores (130 min measured).
audit: $(STAMP)
	$(BIN)/python -m physsim.audit --worlds 512 --json benchmarks/audit_cpu.json

# Trains CONFIG (default: the tiny CPU run) into runs/<name>/; ARGS overrides values, e.g.
# make train ARGS="--train.steps=50". A run that exists resumes from its latest checkpoint.
train: $(STAMP)
	$(BIN)/python -m physsim.train --config $(CONFIG) $(ARGS)

# Throughput of every stage and the ratio to the conventional pipeline; ARGS e.g. "--quick".
bench: $(STAMP)
	$(BIN)/python -m physsim.bench $(ARGS)

# Every accelerator config's training step compiled for its (scaled) mesh on 8 forced CPU devices: compile time,
# per-device memory against the target, shardings against tests/golden/shardings.json (~15 min on 2 cores).
aot: $(STAMP)
	$(BIN)/python -m physsim.train.aot --json benchmarks/aot/cpu-8dev.json --golden tests/golden/shardings.json

# On a GPU machine: the prepared check (scripts/gpu_check.sh); ARGS e.g. "--dry-run" on a CPU.
gpu-check:
	bash scripts/gpu_check.sh $(ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache
