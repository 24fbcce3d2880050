# Two commands set everything up on a fresh machine:
#   make run    create .venv if missing, install, run the whole DAG on the embedded demo
#   make test   the same set-up, then the test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ORACLE := .cache/oracle
CORES  ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint dvc mlflow-ui bench mutants clean-outputs install oracle

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# mamba-ssm's own pure-PyTorch selective_scan_ref is the tests' oracle. Its package cannot be
# imported without CUDA, so only its source distribution is fetched (never built or installed).
oracle: $(STAMP)
	@ls $(ORACLE)/mamba_ssm-*.tar.gz >/dev/null 2>&1 || \
	  MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE $(BIN)/python -m pip download --quiet \
	    --no-deps --no-build-isolation --no-binary :all: 'mamba-ssm==2.3.2.post1' -d $(ORACLE) || \
	  echo "mamba-ssm source not available: oracle tests will be skipped"

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) all

test: $(STAMP) oracle
	$(BIN)/ruff check asym tests benchmarks
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check asym tests benchmarks

dvc: $(STAMP)
	@test -d .dvc || $(BIN)/dvc init --quiet $$(git rev-parse --git-dir >/dev/null 2>&1 || echo --no-scm)
	$(BIN)/dvc repro

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

bench: $(STAMP)
	$(BIN)/python benchmarks/scan.py
	$(BIN)/python benchmarks/pipeline.py

# Mutation testing of the modules whose bugs change results, with the fast tests: the kill rate per
# module and the surviving mutants. A figure, like `bench`; not part of `make test`.
mutants: $(STAMP)
	$(BIN)/python benchmarks/mutants.py $(MODULES)

clean-outputs:
	rm -rf data runs logs reports/*.md reports/*.csv reports/*.tex reports/*.png reports/*.json mlflow.db mlflow.db.lock mlartifacts .snakemake mutants
