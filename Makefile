# serving — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
CONFIG ?= deploy/examples/local.yaml
export HF_HUB_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help
help: ## Show every target with its one-line description
	@grep -hE '^[a-zA-Z0-9_.-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(PYTHON) $(VENV)
	touch $@

.PHONY: setup
setup: $(STAMP) ## Create .venv with the package, the CPU engine and the test tools

.PHONY: model
model: $(STAMP) ## Prepare the embedded SmolLM2-135M model (cached under ~/.cache/serving)
	$(BIN)/serving model prepare

.PHONY: serve
serve: model ## Run the embedded vLLM engine (:8001) and the gateway (:8000); Ctrl-C stops both
	$(BIN)/serving serve --config $(CONFIG)

.PHONY: gateway
gateway: $(STAMP) ## Run only the gateway with CONFIG (default deploy/examples/local.yaml)
	$(BIN)/serving gateway --config $(CONFIG)

.PHONY: chart-files
chart-files: $(STAMP) ## Regenerate the chart's profiles (from the catalog) and its values schema
	$(PY) scripts/gen-chart-profiles.py
	$(PY) scripts/gen-values-schema.py

.PHONY: tools
tools: ## Fetch helm (and kubectl) into .tools/ unless helm is on PATH
	bash scripts/fetch-helm.sh .tools

.PHONY: test
test: model tools ## Set up everything and run the whole suite (real vLLM engine included)
	$(BIN)/ruff check serving tests scripts
	$(BIN)/ruff format --check serving tests scripts
	$(BIN)/mypy
	PATH="$(CURDIR)/.tools:$$PATH" $(BIN)/pytest

.PHONY: test-fast
test-fast: $(STAMP) ## Run the suite without the real-engine tests
	PATH="$(CURDIR)/.tools:$$PATH" $(BIN)/pytest -m "not engine"

.PHONY: lint
lint: $(STAMP) ## ruff check + format check + mypy
	$(BIN)/ruff check serving tests scripts
	$(BIN)/ruff format --check serving tests scripts
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format serving tests scripts
	$(BIN)/ruff check --fix serving tests scripts

.PHONY: bench
bench: $(STAMP) ## Gateway overhead, privacy-scan and routing-decision benchmarks (write reports/)
	$(PY) scripts/bench_gateway.py
	$(PY) scripts/bench_privacy.py
	$(PY) scripts/bench_routing.py

.PHONY: bench-litellm
bench-litellm: $(STAMP) ## The same benchmark side by side with the LiteLLM proxy (in .venv-litellm)
	bash scripts/setup-litellm-venv.sh $(PYTHON) .venv-litellm
	$(PY) scripts/bench_gateway.py --requests 1000 --litellm .venv-litellm

# GPU profiles: GPUs are detected with nvidia-smi; override with GPU=h100 COUNT=4.
GPU   ?=
COUNT ?=
.PHONY: serve-llama-8b serve-llama-70b serve-llama-405b serve-mistral-7b serve-mixtral-8x7b
serve-llama-8b: $(STAMP) ## Serve Llama 3.1 8B on this GPU box (+ gateway)
	bash scripts/serve-profile.sh llama-3.1-8b "$(GPU)" "$(COUNT)"
serve-llama-70b: $(STAMP) ## Serve Llama 3.1 70B on this GPU box (+ gateway)
	bash scripts/serve-profile.sh llama-3.1-70b "$(GPU)" "$(COUNT)"
serve-llama-405b: $(STAMP) ## Serve Llama 3.1 405B (FP8, one 8-GPU node) (+ gateway)
	bash scripts/serve-profile.sh llama-3.1-405b "$(GPU)" "$(COUNT)"
serve-mistral-7b: $(STAMP) ## Serve Mistral 7B v0.3 on this GPU box (+ gateway)
	bash scripts/serve-profile.sh mistral-7b "$(GPU)" "$(COUNT)"
serve-mixtral-8x7b: $(STAMP) ## Serve Mixtral 8x7B on this GPU box (+ gateway)
	bash scripts/serve-profile.sh mixtral-8x7b "$(GPU)" "$(COUNT)"

.PHONY: clean
clean: ## Remove the venv, tools and caches in the repo (not the model cache)
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache reports
