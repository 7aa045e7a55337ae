# The two entry points of the README: `make run` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test checks chromium bench

# What the service runs on; `make run` and a production install take only this.
$(BIN)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The test tools and code checks, on top.
$(BIN)/.dev-installed: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/flask --app app run --host 127.0.0.1 --port 5000

chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The suite twice: on SQLite, then on PostgreSQL (TEST_DATABASE_URL, default the local server). pytest-timeout bounds
# each test; `timeout` bounds each half, interpreter exit included, so both fit well inside CI's limit. Without a
# reachable server the PostgreSQL half is reported as not run, and with CI=true that fails the run.
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# Lint rules and types (configured in pyproject.toml), before the suite.
checks: $(BIN)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy

test: checks node_modules/.installed chromium
	timeout 900 $(BIN)/python -m pytest
	@if $(BIN)/python tests/postgres_server.py; then \
		echo "== the same suite on PostgreSQL"; \
		TEST_DATABASE=postgresql timeout 900 $(BIN)/python -m pytest; \
	elif [ "$${CI:-}" = true ]; then \
		echo "FAILED: the PostgreSQL half of the suite could not run (CI=true requires it)"; exit 1; \
	else \
		echo "NOTE: only the SQLite half of the suite ran; the PostgreSQL half did NOT run (see above)"; \
	fi

# Not part of the tests: figures for bench/RESULTS.md. SIZES=10000,100000 make bench for a shorter run.
SIZES ?= 10000,100000,1000000
bench: $(BIN)/.installed
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench --sizes $(SIZES)
