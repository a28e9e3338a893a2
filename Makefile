# Every target creates the virtualenv and installs the project first if that was not done.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
CLI     = $(VENV)/bin/tiktok-audiences

.PHONY: setup run demo test unit integration lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup            ## the whole stack on embedded defaults, fed by a generated Engage audience
	$(CLI) run --demo

demo: setup           ## the same, exiting with a summary once everything fed is delivered
	$(CLI) run --demo --once

test: setup           ## unit tests, then integration tests against a real redis-server and Celery workers
	./deploy/ensure-redis.sh
	./deploy/ensure-promtool.sh
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest tests/unit

integration: setup
	./deploy/ensure-redis.sh
	./deploy/ensure-promtool.sh
	$(PY) -m pytest tests/integration

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup          ## end-to-end throughput against a one-task-per-event baseline, then the rate-limited grid
	./deploy/ensure-redis.sh
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
