# The two entry points of the README: `make run` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test chromium bench

$(BIN)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/flask --app app run --host 127.0.0.1 --port 5000

chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# pytest-timeout bounds each test; this bounds the whole run, interpreter exit included, well inside CI's limit.
test: $(BIN)/.installed chromium
	timeout 1800 $(BIN)/python -m pytest

# Not part of the tests: figures for bench/RESULTS.md. SIZES=10000,100000 make bench for a shorter run.
SIZES ?= 10000,100000,1000000
bench: $(BIN)/.installed
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench --sizes $(SIZES)
