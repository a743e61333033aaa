# ChargeFlow: `make run` (the shop, with every local component) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install setup run test lint format bench chaos chaos-short fuzz clean

# The local stand-ins need DEBUG on (settings default it to off; docs/security.md). An explicit
# DEBUG=false in the environment still wins.
setup run test bench chaos chaos-short fuzz: export DEBUG ?= true

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

setup: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py seed_catalog

run: setup
	rm -rf var/prometheus && mkdir -p var/prometheus
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus $(BIN)/honcho start -f Procfile

test: install
	eval "$$($(PY) scripts/services_env.py)"; $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/djlint templates */templates --lint
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/djlint templates */templates --reformat

# The long fuzz run (docs/api.md): schemathesis, 500 examples per API operation (> 2,000 cases),
# against the live app; figures in test-artifacts/fuzz-summary.txt.
fuzz: install
	eval "$$($(PY) scripts/services_env.py)"; FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(PY) -m pytest tests/test_openapi.py -k fuzz -q -p no:cacheprovider
	cat test-artifacts/fuzz-summary.txt

# Issue 11's targets as ratios measured side by side in one run (docs/performance.md); its own
# databases, ports and Redis database (BENCH_REDIS_DB, default 13). BENCH_ARGS=--quick: minutes.
bench: install
	$(PY) bench/pipeline.py $(BENCH_ARGS)

# Faults while orders flow, then an audit (docs/operations.md#chaos-run). Starts everything it
# needs, PostgreSQL included; exit 0 only when every invariant holds. Not part of `make test`.
chaos: install
	$(PY) bench/chaos.py $(CHAOS_ARGS)

# The CI variant: every fault once, small numbers, SQLite slow-partner check (< 3 minutes).
chaos-short: install
	$(PY) bench/chaos.py --short $(CHAOS_ARGS)

clean:
	rm -rf var staticfiles
