# fumewatch developer tasks. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV   := .venv
STAMP  := $(VENV)/.installed
# python3.11 if present, else python3 (pyproject requires >= 3.11; pip says so if it is older)
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: venv demo test lint bench chaos clean migration

venv: $(STAMP)

# Re-run only when pyproject.toml changes (or the venv is gone).
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "no python3.11 / python3 on PATH" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

demo: venv
	$(VENV)/bin/fumewatch demo

# pytest's own status is the target's status (5 = no tests collected is a failure too).
test: venv
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# A new state-database migration from the schema modules (docs/ledger.md): make migration MSG="..."
migration: venv
	@test -n "$(MSG)" || { echo 'usage: make migration MSG="what the migration does"' >&2; exit 2; }
	$(VENV)/bin/python -m fumewatch.db.dev revision "$(MSG)"

bench: venv
	$(VENV)/bin/python bench/run.py

chaos: venv
	$(VENV)/bin/python bench/chaos.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
