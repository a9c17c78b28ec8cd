# `make test` and `make reproduce` are all a fresh machine with Python 3.11 needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test lint format reproduce reproduce-swap benchmark clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format jaxopt_papers tests scripts
	$(BIN)/ruff check --fix .

# XLA compilations are shared through JAX's persistent cache by the test
# workers, the notebook kernels and the script subprocesses (most of a CPU
# test's time is compilation); `make clean` empties it.
JAX_CACHE ?= $(CURDIR)/.cache/jax
TEST_ENV = JAX_COMPILATION_CACHE_DIR=$(JAX_CACHE) \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
# Two passes. Tests check values, not speed, and all but the claim runs spend
# their time compiling: they run with XLA's backend optimizations off (level
# 0: about 20 % less time than the default). The claim runs (`-m claims`:
# every paper's quick preset) also compute: level 1 is about 10 % faster
# for them than the default, level 0 about 40 % slower. Exit code 5
# (nothing selected, e.g. PYTEST_ARGS naming one file) is not a failure.
FAST_COMPILE = --xla_backend_optimization_level=0
CLAIMS_COMPILE = --xla_backend_optimization_level=1

test: $(STAMP)
	$(BIN)/ruff check .
	$(TEST_ENV) XLA_FLAGS=$(FAST_COMPILE) \
	  $(BIN)/python -m pytest -n 2 --durations=15 -m 'not claims' \
	  $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(TEST_ENV) XLA_FLAGS=$(CLAIMS_COMPILE) \
	  $(BIN)/python -m pytest -n 2 --durations=15 -m claims \
	  $(PYTEST_ARGS) || [ $$? -eq 5 ]

# 4 simulated CPU devices: the distributed papers run their workers on them.
CPU_DEVICES ?= 4

reproduce: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=$(CPU_DEVICES) \
	  $(BIN)/python -m jaxopt_papers.reproduce --paper=all --preset=quick \
	  --workdir=workdir/reproduce-$$(date +%Y%m%d-%H%M%S)

# Every paper with its config's swap (the baseline in the method's place):
# every comparison claim must fail; exits 1 if one still holds.
reproduce-swap: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=$(CPU_DEVICES) \
	  $(BIN)/python -m jaxopt_papers.reproduce --paper=all --preset=quick \
	  --swap --strict --workdir=workdir/reproduce-swap-$$(date +%Y%m%d-%H%M%S)

# Every paper's time and memory against its baseline (under 10 minutes on
# a 2-core CPU host); writes docs/benchmark.json, then regenerates the
# README's table and docs/benchmarks.md from it.
benchmark: $(STAMP)
	$(BIN)/python scripts/benchmark.py --num_cpu_devices=$(CPU_DEVICES) \
	  --out=docs/benchmark.json
	$(BIN)/python scripts/benchmark_tables.py --json=docs/benchmark.json

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .cache
