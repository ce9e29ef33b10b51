# fairbill: `make run` and `make test` are all the set-up a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# `make run` installs what serving needs; `make test` adds the PostgreSQL driver and the
# development tools (the `dev` dependency group). One stamp each.
SERVE_STAMP := $(VENV)/.installed-serve-$(HASH)
STAMP := $(VENV)/.installed-test-$(HASH)
# `make run PORT=8001`, or FAIRBILL_PORT in the environment.
PORT ?= $(or $(FAIRBILL_PORT),8000)

.PHONY: run test lint typecheck unit scenarios bench crash fleet clean soak chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(SERVE_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	rm -f $(VENV)/.installed-serve-*
	touch $(SERVE_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[postgres]' --group dev
	rm -f $(VENV)/.installed-test-* $(VENV)/.installed-serve-*
	touch $(STAMP) $(SERVE_STAMP)

run: $(SERVE_STAMP)
	$(BIN)/fairbill policy list
	$(BIN)/fairbill serve --demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy src/fairbill

# The browser tests (tests/web) drive Debian's Chromium through Playwright (Playwright's
# own browser download is not used): install it when it is missing and we are root.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "the browser tests need Chromium: sudo apt-get install chromium (they skip without it)"; \
	fi

unit: $(STAMP) chromium
	$(BIN)/pytest -q -n 2

scenarios: $(STAMP)
	$(BIN)/fairbill test examples/scenarios

test: lint typecheck unit scenarios

# The stateful machine (tests/services/test_stateful.py) for >= 100,000 steps per policy:
# 4,000 runs of up to 40 steps (28 to 35 on average: Hypothesis ends a run early once its
# choice buffer fills), about half of them with gateway faults, crashes and restarts; one
# pytest per policy, SOAK_JOBS at a time. About 60 ms of CPU a step: 2-3 hours on 5 cores.
soak: SOAK_EXAMPLES ?= 4000
soak: SOAK_STEPS ?= 40
soak: SOAK_JOBS ?= 5
soak: $(STAMP)
	rm -f soak-steps.txt
	$(BIN)/pytest --collect-only -q tests/services/test_stateful.py | grep '::' | \
	  FAIRBILL_STATEFUL_EXAMPLES=$(SOAK_EXAMPLES) FAIRBILL_STATEFUL_STEPS=$(SOAK_STEPS) \
	  FAIRBILL_STATEFUL_REPORT=$(CURDIR)/soak-steps.txt \
	  xargs -P $(SOAK_JOBS) -I{} $(BIN)/pytest -v {}
	@echo "steps run, per policy:"; cat soak-steps.txt

bench: $(STAMP)
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/cycle.py

# Three `fairbill worker` processes over 50,000 due renewals on PostgreSQL, each exactly once
# (make test runs the same test over 20,000).
fleet: $(STAMP)
	FAIRBILL_FLEET_SUBSCRIPTIONS=50000 $(BIN)/pytest -q -s tests/services/test_worker.py -k exactly_once

# The kill -9 harness at length: 100 kills per database (make test runs 20).
crash: $(STAMP)
	FAIRBILL_CRASH_KILLS=100 $(BIN)/pytest -q -s tests/durability/test_crash_harness.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
