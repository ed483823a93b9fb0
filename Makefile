# tidings: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ANALYTICS_NEXT := .cache/npm/node_modules/@segment/analytics-next
export TIDINGS_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run install test test-deps lint typecheck pytest bench-collect bench-pipeline bench-render bench-campaign clean

$(VENV)/.run-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.run-installed

install: $(VENV)/.run-installed

## make run: install, migrate the embedded SQLite database, seed the demo once, serve.
# The demo's product pictures are served by tidings itself, at its public URL.
run: export TIDINGS_PUBLIC_URL ?= http://$(HOST):$(PORT)
run: $(VENV)/.run-installed
	$(BIN)/tidings migrate
	$(BIN)/tidings demo --host $(HOST) --port $(PORT)
	$(BIN)/tidings serve --host $(HOST) --port $(PORT)

$(ANALYTICS_NEXT):
	mkdir -p .cache/npm
	npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error @segment/analytics-next@1.84.3

/usr/bin/chromium:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# The golden images of rendered content are drawn with DejaVu (rendering itself falls back to
# Pillow's own font without it).
DEJAVU := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
$(DEJAVU):
	$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q fonts-dejavu-core

# The benchmarks' load generator.
/usr/bin/wrk:
	command -v wrk >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk)

test-deps: $(VENV)/.test-installed /usr/bin/chromium $(ANALYTICS_NEXT) $(DEJAVU)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

pytest: test-deps
	$(BIN)/pytest -q

## make test: everything CI runs: lint, format, types, the whole suite (SQLite and PostgreSQL).
test: lint typecheck pytest

bench-collect: $(VENV)/.test-installed /usr/bin/wrk
	$(PY) benchmarks/bench_collect.py

## make bench-pipeline: 1M simulated events through identities and profiles (SQLite, PostgreSQL).
bench-pipeline: $(VENV)/.test-installed
	$(PY) benchmarks/bench_pipeline.py $(ARGS)

## make bench-render: opens of /i/{block}.png for 10,000 profiles, against a static PNG and bare compose.
bench-render: $(VENV)/.test-installed $(DEJAVU) /usr/bin/wrk
	$(PY) benchmarks/bench_render.py $(ARGS)

## make bench-campaign: a campaign sent over SMTP to 100,000 profiles, and its report (SQLite, PostgreSQL).
bench-campaign: $(VENV)/.test-installed
	$(PY) benchmarks/bench_campaign.py $(ARGS)

clean:
	rm -rf $(VENV) .cache var test-artifacts
