# Two commands matter: `make demo` and `make test`. Everything else is what they build on.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
JARS_STAMP := .cache/jars/.resolved
DEMO_ENV ?= local
DEMO_ARGS ?=

# `make test-unit`: the fast lane, no local service started (integration and slow tests left out).
.PHONY: demo test test-cluster test-random test-unit notebook bench bench-scale bench-training venv jars tools lint format services-start services-stop clean-data clean

demo: venv jars
	$(PY) -m decisionlake.cli demo --env $(DEMO_ENV) $(DEMO_ARGS)

test: venv jars tools
	$(VENV)/bin/ruff check lib jobs tests scripts
	$(VENV)/bin/lint-imports
	scripts/run-tests

# The suite (less the cluster test) with modules and the tests in each shuffled: no test may
# depend on another's order or side effects. The seed is printed; `make test-random SEED=N`
# replays an order.
test-random: venv jars tools
	$(PY) -m pytest -m "not cluster" -p no:cacheprovider --random-order-bucket=module \
	  $(if $(SEED),--random-order-seed=$(SEED)) tests

# The run on the local Spark standalone cluster alone (also part of `make test`).
test-cluster: venv jars
	$(PY) -m pytest -q -s -m cluster tests

# Execute the notebooks against the demo's lake (after `make demo`, services still running).
notebook: venv
	$(PY) scripts/run-notebooks

test-unit: venv jars tools
	$(VENV)/bin/ruff check lib jobs tests scripts
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=10 -m "not integration and not slow" tests

# Benchmarks print figures (never timed tests): the pipeline at 1x..8x with floors, then the
# warehouse writer against Spark JDBC. Results also go to bench/results/.
bench: venv jars
	scripts/bench
	scripts/bench-warehouse --rows 1000000 --json bench/results/warehouse-latest.json

# The daily pipeline at 125,000 and 1,000,000 events a day, each with 30 days of history, plus
# floors and the warehouse ceiling: bench/results/scale-latest.json. Long; run it alone.
bench-scale: venv jars
	scripts/bench-scale $(BENCH_SCALE_ARGS)

# train_models on the 50,000-advisor lake bench-scale measured last (BENCH_ROOT to use another):
# each candidate's fit, scikit-learn's reference on the same split; into scale-latest.json.
bench-training: venv jars
	scripts/bench-training --root $(or $(BENCH_ROOT),.cache/bench-history/1000000e-30d/run)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

jars: $(JARS_STAMP)

# Node tools the tests use (the real asl-validator for rendered state machines).
tools: .cache/node/.installed .cache/browser/.installed

# Headless Chromium and its driver (Debian packages) for the business report's browser test.
.cache/browser/.installed:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "the browser test needs Chromium: as root, apt-get install \
	chromium chromium-driver (or run make tools as root)"; exit 1; }; \
	  echo "installing chromium and chromedriver (Debian packages) for the browser test"; \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
	mkdir -p .cache/browser && touch $@

.cache/node/.installed: scripts/node/package.json
	mkdir -p .cache/node
	cp scripts/node/package.json .cache/node/package.json
	cd .cache/node && npm install --no-audit --no-fund --silent
	touch $@

$(JARS_STAMP): scripts/jars/pom.xml scripts/resolve-jars $(shell find jvm -name '*.java') | venv
	bash scripts/resolve-jars

lint: venv
	$(VENV)/bin/ruff check lib jobs tests scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check lib jobs tests scripts

format: venv
	$(VENV)/bin/ruff format lib jobs tests scripts
	$(VENV)/bin/ruff check --fix lib jobs tests scripts

services-start: venv
	$(PY) -m decisionlake.cli services start

services-stop: venv
	$(PY) -m decisionlake.cli services stop

clean-data:
	rm -rf data .run

clean: clean-data
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
