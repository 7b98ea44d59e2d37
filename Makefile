# Stagecraft: `make run` to try it, `make test` to check it. Both are safe to run again.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMPS := .stamps
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install system-deps run test lint bench clean

$(PY):
	python3 -m venv $(VENV)

$(STAMPS)/python: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@mkdir -p $(STAMPS) && touch $@

install: $(STAMPS)/python $(STAMPS)/npm
	@$(BIN)/pybabel -q compile -d webapp/translations \
		-D "messages designer stagedesign ops opsactions analytics commission"

# Front-end packages (htmx, bpmn-js, Chart.js) come from the npm registry, never committed.
$(STAMPS)/npm: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMPS) && touch $@

system-deps:
	@bash scripts/system-deps.sh

run: install
	$(BIN)/stagecraft db upgrade
	$(BIN)/stagecraft processes deploy processes/ --comment "make run"
	$(BIN)/stagecraft demo load
	@echo ""
	@echo "Stagecraft is starting on http://$(HOST):$(PORT)"
	$(BIN)/stagecraft serve --host $(HOST) --port $(PORT)

test: install system-deps
	STAGECRAFT_REQUIRE_POSTGRES=1 $(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check engine crm rules webapp tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: install system-deps
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/rules.py
	$(PY) benchmarks/inbox.py
	$(PY) benchmarks/ops.py
	$(PY) benchmarks/analytics.py

clean:
	rm -rf $(VENV) $(STAMPS) instance node_modules
