# cdrwatch: `make demo` and `make test` set up everything on a fresh machine (python3 >= 3.11; Java 17 only for
# the Spark engine, which `make test` and `make bench` also run: `make demo` runs on the default local engine).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := demo
DEMO_START ?= 2026-11-20
DEMO_DAYS ?= 4
DEMO_SUBSCRIBERS ?= 3000
DEMO_DENS ?= 8
PYTEST_ARGS ?=
# e.g. make bench BENCH_ARGS='--sizes 1M --steps ingest,nightly'
BENCH_ARGS ?=
DEMO_LAST = $(shell date -u -d "$(DEMO_START) + $$(( $(DEMO_DAYS) - 1 )) day" +%F)
DEMO_SECOND = $(shell date -u -d "$(DEMO_START) + 1 day" +%F)
DEMO_PATHS = --landing $(DEMO)/landing --lake $(DEMO)/lake --outbox $(DEMO)/outbox

.DEFAULT_GOAL := help
.PHONY: help demo evaluate lint test test-fast bench clean check-java check-python check-chromium

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || \
	  { echo "cdrwatch needs Python >= 3.11 as '$(PYTHON)' (set PYTHON=/path/to/python3.11)"; exit 1; }

check-java:
	@command -v java >/dev/null 2>&1 || \
	  { echo "the Spark engine needs Java 17: sudo apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)"; exit 1; }

$(VENV)/bin/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

# Reinstall whenever setup.py (the pins) changes; pyspark builds a ~450 MB wheel once, then pip's cache serves it.
$(VENV)/.installed-dev: setup.py | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@touch $@

# The demo closes the field loop: night 1's leads go out, the simulated field units answer (a box raided, a
# lawful SMS gateway marked legitimate), the later nights import the answers, see the box come back with fresh
# SIMs (a high-priority lead) and keep the gateway out of the leads (analysts/suppressed.csv). Two overseas
# gateways spoof residents' and protected numbers (analysts/spoofing.csv), and the carriers' clocks disagree.
demo: $(VENV)/.installed-dev ## simulate a small city, run the pipeline with field feedback, show the outputs
	rm -rf $(DEMO)
	$(VENV)/bin/cdrwatch simulate --out $(DEMO)/landing --start $(DEMO_START) --days $(DEMO_DAYS) \
	  --subscribers $(DEMO_SUBSCRIBERS) --dens $(DEMO_DENS) --raid-after 1 --lawful-gateways 1 \
	  --spoofers 2 --clock-skew 60
	$(VENV)/bin/cdrwatch nightly --date $(DEMO_START) $(DEMO_PATHS)
	$(VENV)/bin/cdrwatch simulate --feedback --date $(DEMO_START) $(DEMO_PATHS)
	$(VENV)/bin/cdrwatch nightly --from $(DEMO_SECOND) --to $(DEMO_LAST) $(DEMO_PATHS)
	$(VENV)/bin/cdrwatch evaluate --feedback --from $(DEMO_START) --to $(DEMO_LAST) $(DEMO_PATHS)

evaluate: $(VENV)/.installed-dev ## after make demo: its last night's flags, then every night's dens per den kind, vs truth/
	$(VENV)/bin/cdrwatch evaluate --truth $(DEMO)/landing/truth --date $(DEMO_LAST) $(DEMO_PATHS)
	$(VENV)/bin/cdrwatch evaluate --truth $(DEMO)/landing/truth --from $(DEMO_START) --to $(DEMO_LAST) $(DEMO_PATHS)

# The tests also run the Airflow DAG, so they need the airflow extra on top of dev.
$(VENV)/.installed-test: setup.py | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[dev,airflow]'
	@touch $@ $(VENV)/.installed-dev

# The report's browser test needs Debian's chromium + chromium-driver (and a CJK font, or the screenshot
# shows boxes for Chinese site names); install them where we can (root + apt), else the test skips.
check-chromium:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
	    || [ -z "$$(fc-list :lang=zh 2>/dev/null)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium, chromium-driver and a CJK font for the report's browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	      fonts-wqy-microhei >/dev/null || echo "could not install chromium: the browser test will be skipped"; \
	  else echo "no chromium and no root/apt to install it: the browser test will be skipped"; fi; \
	fi

lint: $(VENV)/.installed-dev ## ruff: lint and format check of the whole repository
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: check-java check-chromium $(VENV)/.installed-test lint ## lint, then the whole test suite
	$(PY) -m pytest --durations=15 $(PYTEST_ARGS)

test-fast: check-chromium $(VENV)/.installed-test lint ## lint, then the tests that are neither slow nor need Spark (no JVM): about a minute
	$(PY) -m pytest -m "not slow and not spark" $(PYTEST_ARGS)

bench: check-java $(VENV)/.installed-dev ## time every pipeline step at 1 M and 10 M CDR rows (rows/s, peak RSS)
	$(PY) bench/run.py $(BENCH_ARGS)

clean: ## remove the venv, demo and bench data
	rm -rf $(VENV) $(DEMO) .bench *.egg-info .ruff_cache
