# Signoff — the one entry point. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
SAM_VENV ?= .venv-sam
PY := $(VENV)/bin/python
PORT ?= 7777
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The dev tooling (devtools/signoff_dev) is on the venv's path through scripts/setup.sh's .pth; this also
# covers a venv set up before it moved there.
DEV_PY := PYTHONPATH=$(CURDIR)/devtools$${PYTHONPATH:+:$$PYTHONPATH} $(PY)

.PHONY: help setup test lint format check-template build deploy smoke user destroy requirements dev dev-reset invoke token bench bench-knowledge soak clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## install everything: Python 3.12 venv with the project and test dependencies, the SAM CLI venv
	bash scripts/setup.sh

test: ## run every check and test: lint, requirements sync, template checks, unit, integration, e2e
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) scripts/requirements.py --check
	bash scripts/check-template.sh
	$(PY) -m pytest -q

lint: ## ruff lint and format check only
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: ## apply ruff's formatting and safe fixes
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

requirements: ## regenerate layers/signoff/requirements.txt from pyproject.toml
	$(PY) scripts/requirements.py

check-template: ## sam validate --lint, cfn-lint and a container-free sam build
	bash scripts/check-template.sh

build: ## sam build (no container; python3.12 from the project venv)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(SAM_VENV)/bin/sam build --language-extensions

# ENV: samconfig.toml's environment (default = the dev stack signoff-dev, prod = signoff-prod).
ENV ?= default
STACK = $(if $(filter prod,$(ENV)),signoff-prod,signoff-dev)
ENV_OVERRIDES = $(if $(filter prod,$(ENV)),Stage=prod Profile=production LogRetentionDays=90,Stage=dev Profile=cheap)
OVERRIDES ?=
deploy: build ## build and deploy the stack: make deploy [ENV=prod] [OVERRIDES="WebhookSecretArn=arn:..."]
	$(SAM_VENV)/bin/sam deploy --config-env $(ENV) $(if $(OVERRIDES),--parameter-overrides $(ENV_OVERRIDES) $(OVERRIDES))

URL ?=
TOKEN ?=
WEBHOOK_SECRET ?=
smoke: ## the seed's flow (+ a signed-webhook approval) against an API: make smoke URL=https://... [TOKEN=...] [WEBHOOK_SECRET=...]
	@test -n "$(URL)" || { echo "make smoke URL=<the stack's ApiUrl, or http://127.0.0.1:$(PORT)>"; exit 2; }
	$(PY) scripts/smoke.py "$(URL)" $(if $(TOKEN),--token "$(TOKEN)") $(if $(WEBHOOK_SECRET),--webhook-secret "$(WEBHOOK_SECRET)")

USERNAME ?=
GROUP ?= approvers
user: ## create a Cognito user in a group of the stack's pool, print an access token: make -s user USERNAME=alice [GROUP=approvers] [ENV=prod]
	@$(PY) scripts/create_user.py --stack $(STACK) --username "$(USERNAME)" --group "$(GROUP)"

destroy: build ## delete the stack: lift the database's deletion protection, delete, keep (and print) the final snapshot
	$(SAM_VENV)/bin/sam deploy --config-env $(ENV) --no-confirm-changeset --no-fail-on-empty-changeset \
	  --parameter-overrides $(ENV_OVERRIDES) DatabaseDeletionProtection=false
	$(SAM_VENV)/bin/sam delete --config-env $(ENV) --no-prompts
	$(PY) scripts/final_snapshot.py --stack $(STACK)

dev: ## run the API locally on 127.0.0.1:$(PORT): embedded PostgreSQL + pgvector, stand-in model unless OPENAI_* is set
	$(DEV_PY) -m signoff_dev.devserver --port $(PORT)

dev-reset: ## wipe the local dev database (paused runs included)
	rm -rf .dev/pgdata

invoke: ## call one function's handler in-process: make invoke FUNCTION=StartRunFunction EVENT=events/start_run.json
	$(DEV_PY) -m signoff_dev.invoke $(FUNCTION) $(EVENT)

# SUB, not USER: the shell's USER would silently mint a token for the login name.
SUB ?= alice
GROUPS ?=
TTL ?= 3600
token: ## mint a local dev JWT for SIGNOFF_AUTH=jwt make dev: make -s token SUB=alice GROUPS=ops,admins [TTL=3600]
	@$(DEV_PY) -m signoff_dev.token --user "$(SUB)" --groups "$(GROUPS)" --ttl "$(TTL)"

bench: ## print cold-start, warm-overhead, round-trip, memory and size figures (BENCH_ARGS="--runs 3 --no-build")
	$(DEV_PY) scripts/bench.py $(BENCH_ARGS)

bench-knowledge: ## knowledge search: ingestion throughput and search latency p50/p95 at 10k and 100k chunks (~5 min)
	$(PY) scripts/bench_knowledge.py

soak: ## thousands of sign-off flows (SOAK_FLOWS=20000 for more): duplicate/concurrent continues, outside decisions racing executing runs, approval expiry, faults, crashes, postgres stalls; prints figures
	$(DEV_PY) scripts/soak.py

clean: ## remove build output and caches
	rm -rf .aws-sam .pytest_cache .ruff_cache
