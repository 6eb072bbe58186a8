# fleetlab: the two commands are `make lab-up` and `make test`; everything else supports them.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help deps venv lab-up lab-down test test-unit test-integration check lint typecheck format bench clean

help:
	@echo "make lab-up      create .venv, install, start the lab on moto and run the sample jobs"
	@echo "make lab-down    stop everything lab-up started"
	@echo "make test        run the whole test suite (unit + integration against a real moto server)"
	@echo "make check       ruff, ruff format --check, mypy --strict, tests"
	@echo "make bench       pipeline benchmark beside the Celery peer, planner table (JSON lines)"

deps:
	./scripts/install-system-deps

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[lab,dev]'
	touch $(STAMP)

venv: $(STAMP)

lab-up: deps venv
	$(BIN)/lab up

lab-down: venv
	$(BIN)/lab down

# The docker-backend tests need an engine: start one (no-op if one answers), always stop ours.
test: deps venv
	./scripts/dockerd start
	$(BIN)/pytest; status=$$?; ./scripts/dockerd stop; exit $$status

test-unit: venv
	$(BIN)/pytest tests/unit

test-integration: deps venv
	./scripts/dockerd start
	$(BIN)/pytest tests/integration; status=$$?; ./scripts/dockerd stop; exit $$status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint typecheck test

bench: deps venv
	$(BIN)/python bench/pipeline.py --n 500 --reps 3
	$(BIN)/python bench/plan.py --seeds 3

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
