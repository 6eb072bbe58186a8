# fleetlab: the two commands are `make lab-up` and `make test`; everything else supports them.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The emulators (lab environments) the emulator-bound tests run on: both, unless EMULATOR names
# one (`make test EMULATOR=localstack`). `make lab-up EMULATOR=localstack` starts that one.
EMULATOR ?=
EMULATORS := $(or $(EMULATOR),local localstack)

.PHONY: help deps venv lab-up lab-down test test-unit test-integration check lint typecheck format bench soak clean

help:
	@echo "make lab-up      create .venv, install, start the lab on moto and run the sample jobs"
	@echo "                 (EMULATOR=localstack: on LocalStack, installed on the host on demand)"
	@echo "make lab-down    stop everything lab-up started"
	@echo "make test        ruff, ruff format --check, mypy --strict; unit tests, then every"
	@echo "                 emulator-bound test on moto and on LocalStack"
	@echo "                 (EMULATOR=local or EMULATOR=localstack: on that one only)"
	@echo "make check       the same as make test"
	@echo "make bench       pipeline benchmark beside the Celery peer (plain moto, then AWS latency),"
	@echo "                 planner table, lab twin (JSON lines)"
	@echo "make soak        the explorer's long tests, then lab chaos explore at 1,000 requests, each emulator"

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
	$(BIN)/lab up $(if $(EMULATOR),--env $(EMULATOR))

lab-down: venv
	$(BIN)/lab down

# $(call on_emulators,ARGS): pytest ARGS once per emulator in EMULATORS, chosen by the one
# setting FLEETLAB_LAB_ENV; every run goes on after a failure, the recipe fails if any did.
on_emulators = for env in $(EMULATORS); do \
	  echo "== pytest $(1) on $$env"; FLEETLAB_LAB_ENV=$$env $(BIN)/pytest --durations=25 $(1) || status=1; done

# Style and types gate the tests (CI runs exactly this target). Then unit tests once; the rest
# (tests/integration, tests/chaos: every emulator-bound test but those marked soak) on each
# emulator. The docker-backend tests need an engine: start one (no-op if one answers), always
# stop ours.
test: deps venv lint typecheck
	./scripts/dockerd start
	status=0; $(BIN)/pytest tests/unit || status=1; \
	$(call on_emulators,--ignore=tests/unit -m "not soak"); \
	./scripts/dockerd stop; exit $$status

test-unit: venv
	$(BIN)/pytest tests/unit

test-integration: deps venv
	./scripts/dockerd start
	status=0; $(call on_emulators,tests/integration); ./scripts/dockerd stop; exit $$status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: test

bench: deps venv
	$(BIN)/python bench/pipeline.py --n 500 --reps 3 --latency both
	$(BIN)/python bench/moto_cost.py --n 500 --reps 3
	$(BIN)/python bench/plan.py --seeds 3
	$(BIN)/python bench/twin.py --runs 3

# The explorer's tests marked soak (a failure shrunk to a replay), then the explorer at scale,
# on a clean lab per emulator: 1,000 requests over about 5 minutes with faults at 12 a minute
# (seed 1); each report goes to soak-<env>.json, its schedule to soak-<env>-schedule.json, the
# wall time beside it. No shrinking here: each trial replays the whole run (about 10 min), so a
# failure is replayed by hand (`lab chaos replay soak-<env>-schedule.json`) or shrunk (the same
# explore command with `--shrink N`: the seed draws the same schedule).
SOAK_ARGS ?= --seed 1 --jobs 1000 --intensity 12 --shrink 0
soak: deps venv
	status=0; $(call on_emulators,tests/chaos -m soak); \
	for env in $(EMULATORS); do echo "== lab chaos explore on $$env"; \
	  start=$$(date +%s); $(BIN)/lab chaos explore --clean --env $$env $(SOAK_ARGS) --json \
	    --plot soak-$$env.png --save-schedule soak-$$env-schedule.json > soak-$$env.json \
	    || status=1; \
	  echo "$$env: $$(( $$(date +%s) - start )) s wall"; done; exit $$status

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
