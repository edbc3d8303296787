# The two Quick start commands (see README.md). Both create ./.venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# The API's port for `make run` (`PORT=8001 make run`).
PORT ?= 8000

.PHONY: run test bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

## Install and run the whole service on the embedded defaults (SQLite, no Redis needed).
run: $(VENV)/.installed
	$(BIN)/webhooks dev --demo --port $(PORT)

## Install and run lint, types and the whole test suite (real Postgres and Redis).
## The console's browser tests drive Debian's chromium, installed here when missing.
test: $(VENV)/.installed-test
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy webhooks workers api
	$(BIN)/pytest

## Run the benchmark suite (not part of the tests).
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench all
