# Two commands set everything up on a fresh machine:
#   make run    create .venv if missing, install, run the whole DAG on the embedded demo (a run
#               killed half-way resumes: rerun `make run`); DEVICE=cuda|cpu picks the lock
#               (default: the CUDA one where nvidia-smi lists a GPU)
#   make test   the same set-up, then the test suite (what CI runs)
# Also: make test-fast (everything not marked slow), make mutants, make bench, make gpu-wheels,
# make gpu-check, make demo-mechanisms (the demos that know their answer, workflow/demos/).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ORACLE := .cache/oracle
CORES  ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo-mechanisms lock run test test-fast lint dvc mlflow-ui bench mutants clean-outputs install oracle gpu-check gpu-wheels wheels-for-tests

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Every package at the exact version and hash of a lock, then the project. Two locks, made from
# pyproject.toml by `make lock` with uv for Linux x86-64 and Python 3.11: requirements.lock with
# torch's CPU wheel, requirements-cuda.lock with PyPI's torch (the CUDA build) and the same pins
# for everything else. workflow/scripts/install_plan.py picks one: DEVICE=auto (the default) the
# CUDA lock where nvidia-smi lists a GPU, DEVICE=cuda or DEVICE=cpu forces it; a GPU build of torch
# already in the venv is kept (installing the CPU wheel over it is refused). An explicit DEVICE has
# its own stamp, so `make run DEVICE=cuda` installs again after a CPU install; any install also
# stands for DEVICE=auto's, so a later `make run` or `make gpu-check` does not install again.
LOCK        := requirements.lock
CUDA_LOCK   := requirements-cuda.lock
LOCK_EXTRAS := test
UV          := uv==0.13.9
DEVICE      ?= auto
ifneq ($(DEVICE),auto)
STAMP := $(VENV)/.installed-$(DEVICE)
endif
$(STAMP): pyproject.toml $(LOCK) $(CUDA_LOCK) | $(BIN)/python
	$(BIN)/python workflow/scripts/install_plan.py --venv $(VENV) --device $(DEVICE) \
	  --cpu-lock $(LOCK) --cuda-lock $(CUDA_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed*
	touch $(STAMP) $(VENV)/.installed

install: $(STAMP)

# The CUDA lock starts from the CPU lock's pins (uv keeps an output file's versions where it can),
# so the two differ only in torch and what its CUDA build brings (triton, NVIDIA's libraries);
# PIP_FIND_LINKS (where a CPU torch wheel may sit) is left out of it.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml $(addprefix --extra ,$(LOCK_EXTRAS)) --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet '$(UV)'
	$(UV_COMPILE) $(addprefix --find-links ,$(PIP_FIND_LINKS)) -o $(LOCK)
	cp $(LOCK) $(CUDA_LOCK)
	$(UV_COMPILE) -o $(CUDA_LOCK)
	$(BIN)/python workflow/scripts/conda_env.py

# mamba-ssm's own pure-PyTorch selective_scan_ref is the tests' oracle, and the sources of
# mamba-ssm and causal-conv1d are what the CPU tests check our calls into them against. Neither
# package can be imported without CUDA, so only their source distributions are fetched (never
# built or installed here); `gpu-check` builds them from the same files on a GPU machine.
MAMBA_SSM     := mamba-ssm==2.3.2.post1
CAUSAL_CONV1D := causal-conv1d==1.5.3.post1
SDIST_GET     := MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE $(BIN)/python -m pip download \
                 --quiet --no-deps --no-build-isolation --no-binary :all: -d $(ORACLE)
oracle: $(STAMP)
	@ls $(ORACLE)/mamba_ssm-*.tar.gz >/dev/null 2>&1 || $(SDIST_GET) '$(MAMBA_SSM)' || \
	  echo "mamba-ssm source not available: oracle and kernel-API tests will be skipped"
	@ls $(ORACLE)/causal_conv1d-*.tar.gz >/dev/null 2>&1 || $(SDIST_GET) '$(CAUSAL_CONV1D)' || \
	  echo "causal-conv1d source not available: its kernel-API tests will be skipped"

# The GPU check runs offline on a GPU node's own python3 (its CUDA torch and Triton): where there
# is network, `make gpu-wheels` collects into .gpu-wheels/ the wheels of everything else it needs
# (for this Python and GPU_PYTHONS); carry that folder to the node with the clone and run there
#   python3 benchmarks/gpu_check.py            (add --build-mamba-ssm to build mamba-ssm too)
# which writes benchmarks/results/<date>-<gpu>.json. `make gpu-check` runs it with .venv's Python;
# without a CUDA GPU it says so and succeeds; where nvidia-smi lists a GPU that torch cannot use (a
# CPU build, a driver too old for its CUDA) it fails with the reason.
GPU_PYTHONS ?= 3.12
gpu-wheels: $(STAMP)
	$(BIN)/python benchmarks/gpu_wheels.py --pythons $(shell $(BIN)/python -c 'import sys; print(*sys.version_info[:2], sep=".")') $(GPU_PYTHONS)

gpu-check: $(STAMP) oracle
	$(BIN)/python benchmarks/gpu_check.py --build-mamba-ssm --mamba-ssm '$(MAMBA_SSM)' --causal-conv1d '$(CAUSAL_CONV1D)'

run: $(STAMP)
	@$(BIN)/python workflow/scripts/stale_lock.py .
	$(BIN)/snakemake --cores $(CORES) all
	@$(BIN)/snakemake --quiet all --report reports/report.html >/dev/null 2>&1 || \
	  echo "(the HTML report could not be written: run snakemake --report reports/report.html)"
	@echo
	@echo "Tables:      reports/results.md, comparison.md, ablation.md, fairness.md (+ .html, .csv, .tex); summary.csv"
	@echo "Model cards: reports/model_cards/<dataset>-<model>.md (+ .html)"
	@echo "Figures:     reports/metrics.png, confusion_matrices.png, reliability.png, published.png"
	@echo "Studies:     reports/robustness.md (+ robustness_<dataset>.png), cost.md (+ cost.png), explain/<dataset>-<model>-seed<k>.md"
	@echo "HTML report: reports/report.html"
	@echo "MLflow UI:   make mlflow-ui   (it prints the address of the training runs)"

# The demos that know their answer (workflow/demos/): the label only in the audio-visual coupling
# (`synchrony`), and labels independent of the features (`null`); each writes its own folders.
DEMOS := synchrony null
demo-mechanisms: $(STAMP)
	@$(BIN)/python workflow/scripts/stale_lock.py .
	@for demo in $(DEMOS); do \
	  $(BIN)/snakemake --cores $(CORES) all --config params=workflow/demos/$$demo.yaml || exit 1; \
	  $(BIN)/snakemake --quiet all --config params=workflow/demos/$$demo.yaml \
	    --report reports/demos/$$demo/report.html >/dev/null 2>&1 || echo "(no HTML report for $$demo)"; \
	done
	@echo
	@for demo in $(DEMOS); do \
	  echo "$$demo: reports/demos/$$demo/ablation.md, comparison.md, results.md (+ .csv, .tex), report.html"; \
	done

# The tests' rehearsal of the GPU check runs in an environment of only the base and these wheels.
wheels-for-tests: $(STAMP)
	@ls .gpu-wheels/requirements.txt >/dev/null 2>&1 || $(MAKE) --no-print-directory gpu-wheels >/dev/null || \
	  echo "the GPU check's wheels could not be collected: its offline rehearsal test will be skipped"

test: $(STAMP) oracle wheels-for-tests
	$(BIN)/ruff check asym tests benchmarks workflow/scripts
	$(BIN)/python -m pytest -ra -n 2 --dist loadgroup --durations=15

test-fast: $(STAMP) oracle wheels-for-tests
	$(BIN)/ruff check asym tests benchmarks workflow/scripts
	$(BIN)/python -m pytest -ra -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check asym tests benchmarks workflow/scripts
	$(BIN)/snakemake --lint
	$(BIN)/python workflow/scripts/conda_env.py --check

dvc: $(STAMP)
	$(BIN)/dvc repro

mlflow-ui: $(STAMP)
	$(BIN)/python -m asym --params params.yaml ui

bench: $(STAMP)
	$(BIN)/python benchmarks/scan.py
	$(BIN)/python benchmarks/pipeline.py

# Mutation testing of the modules whose bugs change results, with the fast tests: the kill rate per
# module and the surviving mutants. A figure, like `bench`; not part of `make test`.
mutants: $(STAMP)
	$(BIN)/python benchmarks/mutants.py $(MODULES)

clean-outputs:
	rm -rf data runs logs reports/*.md reports/*.csv reports/*.tex reports/*.png reports/*.json reports/*.html reports/model_cards mlflow.db mlflow.db.lock mlartifacts .snakemake mutants
	@git checkout -- reports/README.md 2>/dev/null || true
