# tritongen - `make help` lists the targets. Every target calls the tritongen CLI; none re-implements it.
# Variables can be given on the command line (make repo MODEL=llama3-8b PRECISION=fp8) or in the environment.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON      ?= python3
VENV        ?= .venv
TORCH       ?= torch==2.13.0
# PyPI's torch wheel for Linux is the CUDA build (several GB with its nvidia-* libraries); the cpu route and the
# tests need only the CPU build (about 190 MB). `make venv` takes torch from this index when it answers, else from
# pip's configured index (saying so). TORCH_INDEX= (empty) always uses pip's configured index.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
DYNAMO_PACKAGES ?= ai-dynamo==1.6.1 ai-dynamo-runtime==1.6.1
# Installed with --no-deps too: see the guided extra in pyproject.toml.
NO_DEPS_PACKAGES ?= xgrammar==0.2.9
EXTRAS      ?= cpu,local-server,openai,bench,dev
BIN         := $(VENV)/bin
TRITONGEN   := $(BIN)/tritongen
STAMP       := $(VENV)/.tritongen-installed

# Everything tritongen caches (tiny model, engines, server logs) stays inside the project: the CLI itself uses
# ./.cache when it runs inside a checkout (tritongen.paths.cache_dir), so make and a plain `tritongen` share one
# cache. TRITONGEN_CACHE, when set, wins for both.

MODEL       ?= tiny
NAME        ?=
ROUTE       ?=
PRECISION   ?=
KV_DTYPE    ?=
TP          ?=
PP          ?=
GPUS        ?=
GPU         ?=
ENGINE_DIR  ?=
CHECKPOINT  ?=
SPEC        ?=
SET         ?=
REPO        ?= repos/$(or $(NAME),$(MODEL))
RUNTIME     ?= local
PROMPT      ?= Tell me about the river and the old mill.
MAX_TOKENS  ?= 48
PROTOCOL    ?= grpc
HTTP_PORT   ?= 8000
GRPC_PORT   ?= 8001
METRICS_PORT ?= 8002
OPENAI_PORT ?= 9000
COMPOSE_OUT ?= $(REPO).compose.yaml
# `make engine DRY_RUN=1` on a machine without nvidia-smi plans for this GPU (GPU= overrides).
DRY_RUN_GPU ?= h100-sxm
PYTEST_ARGS ?=
DRY_RUN     ?=
LOCAL       ?=
FORCE       ?=
CONCURRENCY ?= 1,8,32,64
INPUT_LEN   ?= 128
OUTPUT_LEN  ?= 128
REQUESTS    ?=
DURATION    ?=
SLO         ?=
PLAN_ARGS   ?=
SERVE_ARGS  ?=
K8S_ARGS    ?=

SPEC_ARGS = $(if $(SPEC),--spec $(SPEC)) $(if $(ROUTE),--route $(ROUTE)) $(if $(PRECISION),--precision $(PRECISION)) \
            $(if $(KV_DTYPE),--kv-dtype $(KV_DTYPE)) $(if $(TP),--tp $(TP)) $(if $(PP),--pp $(PP)) \
            $(if $(GPUS),--gpus $(GPUS)) $(if $(GPU),--gpu $(GPU)) $(if $(ENGINE_DIR),--engine-dir $(ENGINE_DIR)) \
            $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(NAME),--name $(NAME)) \
            $(foreach s,$(SET),--set $(s))
DRY_RUN_GPU_ARG = $(if $(GPU),,$(if $(shell command -v nvidia-smi 2>/dev/null),,--gpu $(DRY_RUN_GPU)))
PORT_ARGS = --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

.PHONY: help venv torch repo validate spec models plan engine engines bench bench-pipeline test test-fast test-docker standin demo serve k8s compose stop status infer docs lint clean

help: ## Show this help (default goal)
	@echo "tritongen - one spec -> a validated Triton repository for TensorRT-LLM, served and queried"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables (make VAR=value): MODEL=$(MODEL) ROUTE PRECISION KV_DTYPE TP PP GPUS GPU ENGINE_DIR CHECKPOINT"
	@echo "  SPEC=file.yaml SET='limits.max_batch_size=32 serving.streaming=false' NAME REPO=$(REPO) RUNTIME=$(RUNTIME)"
	@echo "  PROMPT MAX_TOKENS PROTOCOL=grpc|http HTTP_PORT GRPC_PORT METRICS_PORT OPENAI_PORT VENV PYTHON TORCH TORCH_INDEX"
	@echo "  engine: DRY_RUN=1 (print the commands; DRY_RUN_GPU=$(DRY_RUN_GPU) without nvidia-smi) LOCAL=1 (run on this host) FORCE=1 (rebuild)"
	@echo "  compose: COMPOSE_OUT=$(COMPOSE_OUT)"
	@echo "  plan: PLAN_ARGS='--gpu h100 --concurrency 64'   bench: CONCURRENCY INPUT_LEN OUTPUT_LEN REQUESTS DURATION SLO"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch first, pinned, so that no dependency can pull a multi-GB CUDA build.
	@$(MAKE) --no-print-directory torch VENV=$(VENV) PYTHON=$(PYTHON)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@# Dynamo without its declared dependencies: the dynamo extra (in dev) holds what it imports (pyproject.toml).
	$(BIN)/python -m pip install --quiet --no-deps $(DYNAMO_PACKAGES)
	$(BIN)/python -m pip install --quiet --no-deps $(NO_DEPS_PACKAGES)
	@touch $(STAMP)

torch: ## Install TORCH into VENV: the CPU build from TORCH_INDEX when it answers, else pip's configured index
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_INDEX)" ] && $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" "$(TORCH_INDEX)" 2>/dev/null; then \
	  echo "torch: $(TORCH) from $(TORCH_INDEX)"; \
	  $(BIN)/python -m pip install --quiet --index-url "$(TORCH_INDEX)" "$(TORCH)"; \
	else \
	  if [ -n "$(TORCH_INDEX)" ]; then echo "torch: $(TORCH_INDEX) cannot be reached; installing $(TORCH) from pip's configured index instead (on plain PyPI that is the CUDA build)" >&2; fi; \
	  $(BIN)/python -m pip install --quiet "$(TORCH)"; \
	fi

venv: $(STAMP) ## Create .venv and install tritongen with everything the demo and tests need

models: $(STAMP) ## List the model catalogue
	$(TRITONGEN) models

spec: $(STAMP) ## Show the resolved spec for MODEL (with ROUTE/PRECISION/TP/SET ...)
	$(TRITONGEN) spec $(MODEL) $(SPEC_ARGS)

plan: $(STAMP) ## Size MODEL on a GPU: memory fit, tp/pp, tok/s, settings (PLAN_ARGS='--gpu h100 --concurrency 64')
	$(TRITONGEN) plan $(MODEL) $(SPEC_ARGS) $(PLAN_ARGS)

engine: $(STAMP) ## Build MODEL's TensorRT-LLM engine in the pinned NGC container (DRY_RUN=1 prints the commands)
	$(TRITONGEN) engine $(MODEL) $(SPEC_ARGS) $(if $(DRY_RUN),--dry-run $(DRY_RUN_GPU_ARG)) $(if $(LOCAL),--local) $(if $(FORCE),--force)

engines: $(STAMP) ## List the engine cache (what is built, for which spec and GPU)
	$(TRITONGEN) engine --list

repo: $(STAMP) ## Render + validate repos/<MODEL> (engine route: ENGINE_DIR=<dir>, else the cache, building first)
	$(TRITONGEN) repo $(MODEL) $(SPEC_ARGS) --out $(REPO)

validate: $(STAMP) ## Validate REPO (default repos/<MODEL>)
	$(TRITONGEN) validate $(REPO) $(if $(ENGINE_DIR),--engine-dir $(ENGINE_DIR)) $(if $(GPU),--gpu $(GPU))

serve: $(STAMP) ## Start Triton on REPO (RUNTIME=local|docker), bound to 127.0.0.1
	$(TRITONGEN) serve $(REPO) $(PORT_ARGS) $(if $(filter docker,$(RUNTIME)),--docker) $(SERVE_ARGS)

k8s: $(STAMP) ## Write deploy/<MODEL>/k8s: kustomize base + dev/prod overlays (K8S_ARGS='--replicas 2 --dry-run')
	$(TRITONGEN) k8s $(MODEL) $(SPEC_ARGS) $(K8S_ARGS)

compose: $(STAMP) ## Write COMPOSE_OUT (default REPO.compose.yaml, beside the repository) for `docker compose`
	$(TRITONGEN) serve $(REPO) --docker --compose-out $(COMPOSE_OUT) $(PORT_ARGS) $(SERVE_ARGS)

stop: $(STAMP) ## Stop the server started by `make serve`
	$(TRITONGEN) stop $(REPO)

status: $(STAMP) ## Show running tritongen servers
	$(TRITONGEN) status

infer: $(STAMP) ## Stream a completion for PROMPT from the running server
	$(TRITONGEN) infer "$(PROMPT)" --max-tokens $(MAX_TOKENS) --protocol $(PROTOCOL) \
	  --url 127.0.0.1:$(if $(filter http,$(PROTOCOL)),$(HTTP_PORT),$(GRPC_PORT))

bench: $(STAMP) ## Load-test the served REPO: TTFT/ITL/throughput per level (CONCURRENCY REQUESTS DURATION SLO PROTOCOL)
	$(TRITONGEN) bench --url 127.0.0.1:$(if $(filter http,$(PROTOCOL)),$(HTTP_PORT),$(GRPC_PORT)) --protocol $(PROTOCOL) \
	  --concurrency $(CONCURRENCY) --input-len $(INPUT_LEN) --output-len $(OUTPUT_LEN) \
	  $(if $(REQUESTS),--requests $(REQUESTS)) $(if $(DURATION),--duration $(DURATION)) $(if $(SLO),--slo $(SLO)) \
	  $(if $(wildcard $(REPO)),--repo $(REPO)) --out bench-results/$(or $(NAME),$(MODEL))

bench-pipeline: $(STAMP) ## What the pipeline costs vs the engine alone (lean stand-in baseline; ~20 min, quiet machine)
	@mkdir -p bench-results
	$(BIN)/python benchmarks/pipeline.py $(BENCH_ARGS) --json bench-results/pipeline.json

demo: $(STAMP) ## The whole stack on this machine: tiny model -> repo -> server -> gRPC stream + HTTP generate
	$(TRITONGEN) demo $(if $(filter-out tiny,$(MODEL)),--model $(MODEL)) $(PORT_ARGS) --openai-port $(OPENAI_PORT)

test: $(STAMP) ## Run the test suite (unit + real tritonserver + docker when a daemon can run)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-docker: $(STAMP) ## Only the docker tests (start their own dockerd; build the stand-in image once)
	$(BIN)/python -m pytest -m docker $(PYTEST_ARGS)

standin: $(STAMP) ## Build the local stand-in for the NGC image (tritonserver at /opt/tritonserver, CPU torch)
	$(BIN)/python docker/standin/build.py

test-fast: $(STAMP) ## Unit tests only (no server, no docker)
	$(BIN)/python -m pytest -m "not server and not docker and not slow" $(PYTEST_ARGS)

docs: $(STAMP) ## Regenerate the spec reference in README.md from the spec model
	$(BIN)/python -c "from pathlib import Path; from tritongen.spec.reference import update_readme; update_readme(Path('README.md'))"

lint: $(STAMP) ## ruff over the package, templates' Python and tests
	$(BIN)/ruff check tritongen templates tests benchmarks docker

clean: ## Remove generated repositories and caches (keeps .venv)
	rm -rf .cache repos/*/ repos/*.compose.yaml deploy/ .pytest_cache
