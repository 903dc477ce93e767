# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PGURL  ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test lint bench install dev clean

$(BIN)/watcher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/watcher

dev: $(VENV)/.dev

run: $(BIN)/watcher
	$(BIN)/watcher run

test: $(VENV)/.dev
	$(BIN)/ruff check watcher tests
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.dev
	$(BIN)/ruff check watcher tests
	$(BIN)/ruff format --check watcher tests

R2E_VENV ?= /tmp/r2e-venv

# rss2email (the peer we measure against) lives in its own venv; its rows are skipped without it.
$(R2E_VENV)/bin/r2e:
	-$(PYTHON) -m venv $(R2E_VENV) && $(R2E_VENV)/bin/pip install -q rss2email

bench: $(VENV)/.dev $(R2E_VENV)/bin/r2e
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
