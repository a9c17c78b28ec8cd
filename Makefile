# `make test` and `make reproduce` are all a fresh machine with Python 3.11 needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test lint format reproduce benchmark clean

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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

# 4 simulated CPU devices: the distributed papers run their workers on them.
CPU_DEVICES ?= 4

reproduce: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=$(CPU_DEVICES) \
	  $(BIN)/python -m jaxopt_papers.reproduce --paper=all --preset=quick \
	  --workdir=workdir/reproduce-$$(date +%Y%m%d-%H%M%S)

benchmark: $(STAMP)
	$(BIN)/python scripts/benchmark.py --num_cpu_devices=$(CPU_DEVICES)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
