# stocklake: `make run` runs the whole pipeline; `make test` runs every check.
# Both install what they need first (idempotent; a warm re-run is quick).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STOCKLAKE := $(VENV)/bin/stocklake
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install system-deps up down status lint format test run airflow dashboard bench clean-state

help:
	@echo "make run      install, start the local stack, run the whole pipeline"
	@echo "make test     install, start the local stack, lint and run the tests, stop the stack"
	@echo "make up|down|status   the embedded local stack"
	@echo "make airflow  Airflow UI (api-server + scheduler) on 127.0.0.1"
	@echo "make dashboard  the dashboard (Streamlit) on 127.0.0.1, in the foreground"
	@echo "make bench    the benchmarks, their goals table, the README's benchmark section"

# The pinned set: constraints.txt is the lock. The s3a jars come from the
# sagemaker-pyspark sdist, installed without its (outdated) dependencies.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" "setuptools>=77" wheel
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PIP) install -q --no-deps sagemaker-pyspark==1.4.5
	$(PY) -c "import pyspark, sagemaker_pyspark; assert pyspark.__version__ == '3.5.9', pyspark.__version__"
	@touch $(STAMP)

install: system-deps $(STAMP)

system-deps:
	@bash infra/system_deps.sh

up: install
	$(STOCKLAKE) up

down:
	@if [ -x $(STOCKLAKE) ]; then $(STOCKLAKE) down; else echo "nothing installed, nothing to stop"; fi

status:
	$(STOCKLAKE) status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Starts the stack, lints, tests, and stops the stack even when a step fails.
test: install
	@$(STOCKLAKE) up
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(PY) -m pytest $(PYTEST_ARGS) || status=1; \
	$(STOCKLAKE) down; \
	exit $$status

run: install
	@bash infra/run_pipeline.sh

airflow: install
	@bash infra/airflow.sh

dashboard: install
	$(STOCKLAKE) dashboard

# The benchmarks of the goals table, then the table itself (printed, and written into the
# README between its bench markers). Each script writes bench/results/<script>.json.
# bench/bench_s3_servers.py (moto vs SeaweedFS side by side) runs on its own.
BENCH_SCRIPTS ?= bench/bench_produce_land.py bench/bench_spark_daily.py bench/bench_load.py \
	bench/bench_spark_stream.py bench/bench_backfill.py bench/bench_features.py \
	bench/bench_stack.py bench/bench_dag_parse.py bench/bench_dashboard.py

bench: install
	@$(STOCKLAKE) up
	@for script in $(BENCH_SCRIPTS); do echo "== $$script"; $(PY) $$script || exit 1; done
	@$(PY) bench/report.py --readme

# The only target that erases data: it says what it deletes (lake, topics, warehouse).
clean-state:
	@if [ -x $(STOCKLAKE) ]; then $(STOCKLAKE) down && $(STOCKLAKE) clean-state --yes; else rm -rf .state; fi
