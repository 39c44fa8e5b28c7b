# The two commands of the README: `make run` and `make test`. Each installs what it needs once.
SHELL := /bin/bash
VENV := .venv
# Our pin; trainer/requirements.txt accepts what GPU hosts run (make test-torch tries another).
TORCH := 2.13.0
PY := $(VENV)/bin/python
STAMP_NODE := node_modules/.kiln-installed
STAMP_PY := $(VENV)/.kiln-installed
NODE_TEST := node --import tsx --test --test-concurrency=1
# Node tests that wait on the database, sockets and small processes, and those that train on the CPU.
NODE_UNIT = $$(find test -name '*.test.ts' -not -path 'test/e2e/*' -not -path 'test/web/*' -not -name 'train-wait.test.ts' | sort)
NODE_E2E = test/e2e/*.test.ts test/cli/train-wait.test.ts test/web/*.test.ts

.PHONY: run build-web test test-lane-check test-lane-ts test-ts test-static test-fuzz test-node test-node-unit test-node-e2e test-python test-check test-fast test-torch lint format setup build bench clean

# The installs run side by side: npm's build of better-sqlite3 (SQLite from source, no prebuilt
# binary is reachable) takes about as long as the Python venv.
run:
	$(MAKE) --no-print-directory -j2 setup build
	./kiln serve

setup: $(STAMP_NODE) $(STAMP_PY)

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(STAMP_PY): trainer/requirements.txt trainer/pyproject.toml test/fuzz/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH)
	$(PY) -m pip install -q -r trainer/requirements.txt
	$(PY) -m pip install -q --no-deps -e trainer
	$(PY) -m pip install -q -r test/fuzz/requirements.txt
	touch $@

build: $(STAMP_NODE) build-web
	npx tsc -p tsconfig.json

# The dashboard (web/, Preact + uPlot) into dist/web/, which the API process serves at /.
build-web: $(STAMP_NODE)
	npx vite build --config web/vite.config.ts --logLevel warn

# First both installs side by side (npm's build of better-sqlite3, SQLite from source with no
# prebuilt binary reachable, takes about as long as the Python venv; started beside the tests
# instead, it starved and held back the end-to-end part). Then three lanes of about equal length,
# side by side on two cores (much of the suite waits on subprocesses, signals and sockets, and a
# third lane fills those waits): the trainer's tests; check.py's CPU mode, then the node tests
# that mostly wait on the database and sockets; the static checks (types: tsconfig.check.json
# covers src, tests and benches, nothing is emitted; lint), the property-based run against the
# OpenAPI document, then the end-to-end tests, which train. A fresh clone on 2 cores (2026-12-04)
# took 595 s so, against 642 s with the six parts in one queue: there the end-to-end part started
# last, at 319 s, and ran its final two minutes alone on one core. (Fuzz moved to the second lane:
# 608 s.) Run beside the two Python parts from the very start, it took twice as long and broke a
# 5 s stop bound.
test:
	$(MAKE) --no-print-directory -j2 setup
	$(MAKE) --no-print-directory -j3 --output-sync=target test-python test-lane-check test-lane-ts

test-lane-check:
	$(MAKE) --no-print-directory test-check
	$(MAKE) --no-print-directory test-node-unit

test-lane-ts:
	$(MAKE) --no-print-directory test-static
	$(MAKE) --no-print-directory test-fuzz
	$(MAKE) --no-print-directory test-node-e2e

test-ts: test-static test-fuzz test-node-unit test-node-e2e

test-static: $(STAMP_NODE) $(STAMP_PY)
	npx tsc -p tsconfig.check.json
	npx tsc -p web/tsconfig.json
	$(MAKE) --no-print-directory lint

# One thread each: tiny models on a shared 2-core box, where extra threads only add contention.
test-python: $(STAMP_PY)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q trainer/tests

test-check: $(STAMP_PY)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q bench/gpu

# ESLint (type-checked) and Prettier for the TypeScript, ruff for the Python.
lint: setup
	npm run --silent lint
	$(PY) -m ruff check trainer bench
	$(PY) -m ruff format --check trainer bench

format: setup
	npm run --silent format
	$(PY) -m ruff format trainer bench
	$(PY) -m ruff check --fix trainer bench

# schemathesis against /openapi.json of a real server (test/fuzz/): seeded, bounded, about a minute.
test-fuzz: $(STAMP_NODE) $(STAMP_PY)
	node --import tsx test/fuzz/run.ts

# Every TS test runs against SQLite; those that take KILN_TEST_DATABASE_URL also against Postgres.
test-node: test-node-unit test-node-e2e

# Test files are independent (a Postgres schema and a temp dir each), so two run at a time.
test-node-unit: $(STAMP_NODE)
	node --import tsx --test --test-concurrency=2 $(NODE_UNIT)

test-node-e2e: $(STAMP_NODE) build-web
	$(NODE_TEST) $(NODE_E2E)

# The quick loop while developing: no end-to-end, CLI-with-trainer or slow trainer tests.
# CI runs everything (make test).
test-fast: setup
	$(PY) -m pytest -q -m "not slow" trainer/tests
	node --import tsx --test --test-concurrency=2 $(NODE_UNIT)

# The trainer's tests and check.py's CPU mode on another torch than our pin, in their own venv:
# GPU hosts run 2.11 to 2.13 (the lent GPU machine has 2.11). `make test-torch TORCH=2.11.0`. Not in
# `make test`: PyPI has only CUDA builds of torch for Linux, about 4 GB a version.
test-torch:
	$(MAKE) --no-print-directory test-python test-check VENV=.venv-torch$(TORCH)

bench: setup build
	$(PY) -m pip install -q -r bench/baselines/requirements.txt
	node --import tsx bench/run.ts

# Not in `make test` or `make bench`: a Postgres fleet with workers SIGKILLed and Postgres
# restarted under it, for a few minutes (bench/chaos/chaos.ts says what it checks).
.PHONY: bench-chaos
bench-chaos: setup
	node --import tsx bench/chaos/chaos.ts

clean:
	rm -rf dist node_modules $(VENV)
