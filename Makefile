# The two entry points of the README: `make run` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin
# Any Python from 3.11 to 3.13: `make run PYTHON=python3.12` for another than the machine's python3.
PYTHON ?= python3
SUPPORTED := (3, 11) <= sys.version_info[:2] <= (3, 13)
# The suite's SQLite half runs again on the other end of the supported range: on 3.13 when PYTHON is older, on 3.11
# when it is 3.13. Found by name, on PATH or among pyenv's versions; the first that runs.
OTHER_VERSION := $(shell $(PYTHON) -c 'import sys; print("3.11" if sys.version_info[:2] >= (3, 13) else "3.13")')
OTHER_PYTHON := $(shell for p in $$(echo "$$PATH" | tr : '\n' | sed 's|$$|/python$(OTHER_VERSION)|') \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(OTHER_VERSION)*/bin/python$(OTHER_VERSION) 2>/dev/null); do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
OTHER_VENV := .venv-$(OTHER_VERSION)

.PHONY: run test checks chromium bench sqlite-halves postgresql-half other-python-half

# What the service runs on; `make run` and a production install take only this.
$(BIN)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(not ($(SUPPORTED)))' || { \
		echo "$(PYTHON) is Python $$($(PYTHON) -V 2>&1); 3.11 to 3.13 are supported: make ... PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The test tools and code checks, on top.
$(BIN)/.dev-installed: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Where `make run` serves: `make run PORT=8080`, or HOST=0.0.0.0 to be reached from other machines.
HOST ?= 127.0.0.1
PORT ?= 5000

# gunicorn, as in production: Flask's development server runs each request on a new thread, which rebuilt every
# per-thread cache (the index snapshot, the postcode and place readers) per request and took 3x as long a search.
# A first start builds before the server starts, saying what it does; the server then logs each request.
run: $(BIN)/.installed
	LOG_LEVEL=$${LOG_LEVEL:-INFO} $(BIN)/flask --app app prepare
	LOG_LEVEL=$${LOG_LEVEL:-INFO} $(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 --access-logfile - app:app

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
	@$(MAKE) --no-print-directory --jobs=2 --output-sync=target sqlite-halves postgresql-half

# The PostgreSQL half runs beside the two SQLite halves (this Python's, then the other's), each line's output shown
# when it ends: the suite waits on servers, browsers and sleeps more than it computes. The SQLite half first and then
# the other two side by side took 30.7 minutes with setup on 2026-12-06 (9:58, then 15:40 for the PostgreSQL half,
# its long pole); started together, the PostgreSQL half no longer waits for the first. HALF_TIMEOUT bounds each
# half against a hang past pytest-timeout's per test (interpreter exit included). It was 1500 s: on the slower machine
# of 2026-12-07 (the floor benchmark 1.6x last session's) both halves ran side by side were stopped by it at 59%.
HALF_TIMEOUT ?= 3000
sqlite-halves:
	@echo "== the suite on SQLite ($$($(BIN)/python -V))"
	timeout $(HALF_TIMEOUT) $(BIN)/python -m pytest
	@$(MAKE) --no-print-directory other-python-half

postgresql-half:
	@if $(BIN)/python tests/postgres_server.py; then \
		echo "== the same suite on PostgreSQL"; \
		TEST_DATABASE=postgresql timeout $(HALF_TIMEOUT) $(BIN)/python -m pytest; \
	elif [ "$${CI:-}" = true ]; then \
		echo "FAILED: the PostgreSQL half of the suite could not run (CI=true requires it)"; exit 1; \
	else \
		echo "NOTE: only the SQLite half of the suite ran; the PostgreSQL half did NOT run (see above)"; \
	fi

other-python-half:
	@if [ -n "$(OTHER_PYTHON)" ]; then \
		$(MAKE) --no-print-directory $(OTHER_VENV)/.dev-installed OTHER_PYTHON=$(OTHER_PYTHON) && \
		echo "== the SQLite half again on $$($(OTHER_PYTHON) -V) ($(OTHER_PYTHON))" && \
		timeout $(HALF_TIMEOUT) $(OTHER_VENV)/bin/python -m pytest; \
	elif [ "$${CI:-}" = true ]; then \
		echo "FAILED: Python $(OTHER_VERSION) is absent, so the suite ran on one end of 3.11-3.13 only"; exit 1; \
	else \
		echo "NOTE: Python $(OTHER_VERSION) is absent: the suite did NOT run on it, only on $$($(PYTHON) -V)"; \
	fi

# The other Python's environment, for the suite alone.
$(OTHER_VENV)/.dev-installed: requirements.txt requirements-dev.txt
	$(OTHER_PYTHON) -m venv $(OTHER_VENV)
	$(OTHER_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Not part of the tests: figures for bench/RESULTS.md. SIZES=10000,100000 make bench for a shorter run.
SIZES ?= 10000,100000,1000000
bench: $(BIN)/.installed
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	@test -f /usr/share/postgresql/15/extension/postgis.control || { apt-get update -qq && \
		apt-get install -y -qq postgresql-15-postgis-3 >/dev/null; }
	$(BIN)/python -m bench --sizes $(SIZES)
	$(BIN)/python -m bench --sizes 100000 --per-class 5 --serve-seconds 0 --keep --out bench/out/versus
	$(BIN)/python -m bench.versus bench/out/versus/n100000 --per-class 60 --out bench/out/versus/versus.json
