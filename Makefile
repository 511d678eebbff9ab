# CareMap NYC: `make run` serves the site on this machine, `make test` runs every check.
# GNU make. Settings come from the environment (see README.md), never from this file.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
PG_PING := import sys, sqlalchemy as sa; \
	sa.create_engine(sys.argv[1], connect_args={"connect_timeout": 3}).connect().close()

# pytest's exit code 5 means it collected no tests: a suite that tests nothing has failed.
define pytest
$(BIN)/python -m pytest $(PYTEST_ARGS) $(1); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: counting that as a failure"; fi; \
	exit $$status
endef

.PHONY: help venv run serve lint audit test test-sqlite test-postgres bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# Reinstall only when a requirements file changed since the last install.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create .venv and install requirements (when they changed)

run: venv ## Migrate, import the seed data, serve on http://127.0.0.1:5000 (SQLite)
	$(FLASK) db upgrade
	$(FLASK) import-clinics
	@echo "CareMap NYC on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(FLASK) run --host $(HOST) --port $(PORT)

# The scale path as deployed: production settings, gunicorn's workers, PostgreSQL and Redis.
serve: venv ## Production mode: gunicorn workers on PostgreSQL and Redis (see README)
	@for var in SECRET_KEY DATABASE_URL RATELIMIT_STORAGE_URI; do \
		if [ -z "$${!var:-}" ]; then echo "make serve: set $$var first (README: The scale path)"; exit 2; fi; \
	done
	CAREMAP_ENV=production $(FLASK) db upgrade
	CAREMAP_ENV=production $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

lint: venv ## ruff and mypy
	$(BIN)/ruff check --output-format=concise .
	$(BIN)/mypy directory

audit: venv ## Known vulnerabilities in requirements.txt (pip-audit; fails on any)
	$(BIN)/python scripts/audit_deps.py requirements.txt

test: lint audit test-sqlite test-postgres ## Lint, audit dependencies, then the suite on SQLite and on PostgreSQL

test-sqlite: venv ## The suite on SQLite, browser tests included
	@echo "== tests on SQLite"
	@TEST_DATABASE_URL= $(call pytest,-m "not stack")

# Outside CI a machine without PostgreSQL skips this pass with a message; under CI=true
# a missing server fails the run (tests/conftest.py refuses to skip there too).
test-postgres: venv ## The suite on PostgreSQL, with the production stack tests (gunicorn, Redis)
	@echo "== tests on PostgreSQL ($(PG_TEST_URL))"
	@if ! $(BIN)/python -c '$(PG_PING)' '$(PG_TEST_URL)' 2>/dev/null; then \
		if [ "$${CI:-}" = "true" ]; then \
			echo "PostgreSQL is not reachable at $(PG_TEST_URL): failing, as CI=true"; exit 1; \
		fi; \
		echo "PostgreSQL is not reachable at $(PG_TEST_URL): SKIPPING the PostgreSQL pass."; \
		echo "Start it (see README.md) or set PG_TEST_URL to run it."; \
		exit 0; \
	fi; \
	TEST_DATABASE_URL='$(PG_TEST_URL)' $(call pytest,-m "not browser or stack")

bench: venv ## Run every benchmark in bench/ and print its figures
	@benches="$(wildcard bench/*.py)"; \
	if [ -z "$$benches" ]; then echo "no benchmarks in bench/ yet"; exit 0; fi; \
	for bench in $$benches; do echo "== $$bench"; $(BIN)/python $$bench || exit $$?; done

clean: ## Remove caches (keeps .venv and instance/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
