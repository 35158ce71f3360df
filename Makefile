# SleepSync: `make demo` runs the embedded single-node demo, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck pytest services bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sleepsync demo

# The committed sleepsync/ folder links the packages under their import names,
# so mypy (like pyright and IDEs) reads them from the repository root as they are.
typecheck: $(STAMP)
	$(BIN)/mypy --strict -p sleepsync

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

services:
	sh tools/ensure-services.sh

# Coverage counts the server and pod processes the tests start too (see
# [tool.coverage.run] in pyproject.toml); the sans-I/O core must stay above 90%.
pytest: $(STAMP) services
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --skip-covered --sort=cover
	$(BIN)/coverage report --include='protocol/*,server/engine/*' --fail-under=90 | tail -n 1

test: lint typecheck pytest
	$(MAKE) --no-print-directory compose-test

# docker-compose.yml and the Dockerfile run for real, with podman and docker-compose
# from Debian (installed when missing), and a failover drill inside the containers.
# Skips with one line where podman cannot run; SLEEPSYNC_COMPOSE_TEST=0 skips it.
.PHONY: compose-test
compose-test: $(STAMP)
	bash tools/compose-test.sh

bench: $(STAMP) services
	$(BIN)/python benchmarks/fanout.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info .coverage .coverage.*
