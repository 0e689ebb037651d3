# The two set-up commands of the README, and a few conveniences. Everything runs inside .venv,
# created on first use from pyproject.toml (Python 3.11+ and Java 17+ must be on the machine).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist: the suite mostly waits (JVM starts, servers, subprocesses), so two workers pay
# even on 2 cores; each test file runs whole on one worker (module fixtures, the cluster stack),
# files in collection order (tests/conftest.py puts the longest first), not by test count
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder
# make check: no cluster or module-wide set-up worth keeping on one worker, so tests are
# spread one by one (two Spark sessions warm, neither waits on the other's longest file)
CHECK_WORKERS ?= -n 2 --dist load
# pytest keeps its assertion-rewritten test modules in __pycache__ only where Python may write
# bytecode: an inherited PYTHONDONTWRITEBYTECODE would make every run rewrite them all (about
# 2.5 s per worker before the first test)
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/pytest
# make check's JVMs compile with C1 only: on its tiny inputs the optimizing compiler's work is
# never paid back, and on 2 cores the two workers' JVMs compete with it for CPU (make check
# spends a third less CPU). make test keeps the default: its longer Spark runs need C2's code
CHECK_JAVA_OPTIONS ?= -XX:TieredStopAtLevel=1

.PHONY: main test check lint repro ui serve clean spark-archive cluster-up cluster-down plots-template

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	-$(BIN)/python -m tweetops.spark_cds
	touch $(STAMP)

## spark-archive: (re)build the Spark driver's class archive (made once by the install above;
## every Spark step then starts its JVM about twice as fast; without it Spark works, slower)
spark-archive: $(STAMP)
	$(BIN)/python -m tweetops.spark_cds

## main: ingest -> features -> train -> promote on the offline default (synthetic tweets)
main: $(STAMP)
	$(BIN)/tweetops main

## test: the whole test suite, end-to-end tests included
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(PYTEST) $(PYTEST_WORKERS)

## check: the fast loop while changing code: ruff, then every test not marked slow
check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	SPARK_SUBMIT_OPTS="$(CHECK_JAVA_OPTIONS) $$SPARK_SUBMIT_OPTS" $(PYTEST) $(CHECK_WORKERS) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## repro: the same chain through DVC (a second run does nothing)
repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

## plots-template: rewrite .dvc/plots/offline.html (Vega inlined) after a vl-convert-python bump
plots-template: $(STAMP)
	$(BIN)/python .dvc/plots/offline_template.py

ui: $(STAMP)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000

serve: $(STAMP)
	$(BIN)/mlflow models serve -m models:/tweet-engagement@champion --env-manager local --host 127.0.0.1 --port 5001

clean:
	rm -rf data/raw data/features data/checkpoints data/predictions reports/*.json mlflow.db mlruns

# The loopback cluster of docs/scale-out.md: PostgreSQL, an authenticated `mlflow server` and a
# Spark master with two workers, all state in $(CLUSTER_DIR). Override any port: make cluster-up
# CLUSTER_MLFLOW_PORT=15001. Never 4040 (Spark's UI) or 5000 (`make ui`).
CLUSTER_DIR ?= .cluster
CLUSTER_PG_PORT ?= 15432
CLUSTER_MLFLOW_PORT ?= 15000
CLUSTER_SPARK_PORT ?= 17077
CLUSTER_SPARK_UI_PORT ?= 18080
CLUSTER_WORKER_UI_PORT ?= 18081

## cluster-up: start the cluster and print the `export` lines that point the steps at it
cluster-up: $(STAMP)
	@$(BIN)/python -m tweetops.cluster up --dir $(CLUSTER_DIR) \
		--postgres-port $(CLUSTER_PG_PORT) --mlflow-port $(CLUSTER_MLFLOW_PORT) \
		--spark-port $(CLUSTER_SPARK_PORT) --spark-ui-port $(CLUSTER_SPARK_UI_PORT) \
		--worker-ui-port $(CLUSTER_WORKER_UI_PORT)

## cluster-down: stop exactly what cluster-up started (from its pid files)
cluster-down: $(STAMP)
	@$(BIN)/python -m tweetops.cluster down --dir $(CLUSTER_DIR)
