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

# mypy cannot follow setuptools' editable import hook, so it reads the packages
# through a link tree that mirrors their installed names (sleepsync.protocol, ...).
typecheck: $(STAMP)
	rm -rf .mypy-src && mkdir -p .mypy-src/sleepsync
	ln -s ../../protocol .mypy-src/sleepsync/protocol
	ln -s ../../server .mypy-src/sleepsync/server
	ln -s ../../client .mypy-src/sleepsync/client
	cd .mypy-src && ../$(BIN)/mypy --strict --config-file ../pyproject.toml -p sleepsync

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

services:
	sh tools/ensure-services.sh

pytest: $(STAMP) services
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(STAMP) services
	$(BIN)/python benchmarks/fanout.py

clean:
	rm -rf $(VENV) .mypy-src .mypy_cache .ruff_cache .pytest_cache build *.egg-info
