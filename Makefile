# The two commands of the README:
#   make run    set everything up, then run the whole pipeline on the built-in default (dvc repro)
#   make test   set everything up, then run the linter and the test suite
# Both create a virtual environment in .venv (override with VENV=...) from pyproject.toml.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.pdarts-installed

export DVC_NO_ANALYTICS := 1

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(STAMP)

# dvc.yaml's first step checks every setting before any other step runs.
run: setup
	PATH="$(abspath $(BIN)):$$PATH" dvc repro

lint: setup
	$(BIN)/ruff check pdarts pdarts_bench tests
	$(BIN)/ruff format --check pdarts pdarts_bench tests

test: lint
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
