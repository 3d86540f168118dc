# Duluan: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck unit demo bench clean system-deps audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime dependencies, pinned by constraints.txt.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# Dev dependencies (test runner, linters, SMTP server for mail tests).
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/duluan up

# System packages the tests need (none beyond Python yet; kept as the one place to add them).
system-deps:
	@bash scripts/system-deps.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy schema crawlers nlp index alerts duluan

unit: $(DEV_STAMP) system-deps
	bash scripts/with-services.sh $(BIN)/pytest -q

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/duluan demo

# Known vulnerabilities in the pinned dependencies (needs the PyPI JSON API or OSV; not part of `test`:
# exit 3 when the database cannot be reached, AUDIT_FLAGS=--allow-offline makes that a warning).
audit: $(DEV_STAMP)
	$(BIN)/python scripts/audit.py $(AUDIT_FLAGS)

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
