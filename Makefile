# my-claw: every target installs what it needs first and is safe to run again.
SHELL := bash
.DEFAULT_GOAL := help
.PHONY: help up dev agent gradio gateway test test-agent test-gateway bench soak cron-install system-deps agent-deps gateway-deps

UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
AGENT_STAMP := agent/.venv/.synced
GATEWAY_STAMP := gateway/node_modules/.package-lock.json

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	bash scripts/ensure-uv.sh

$(AGENT_STAMP): agent/pyproject.toml agent/uv.lock | $(UV)
	cd agent && $(UV) sync --locked
	touch $@

agent-deps: $(AGENT_STAMP)

# npm ci also generates the Prisma client (postinstall), offline.
$(GATEWAY_STAMP): gateway/package.json gateway/package-lock.json
	cd gateway && npm ci --no-audit --no-fund
	touch $@

gateway-deps: $(GATEWAY_STAMP)

system-deps: ## Install the Debian packages the tests need (xvfb, xclip, xdotool, chromium), when missing and root
	bash scripts/system-deps.sh

up: agent-deps gateway-deps ## Run the whole assistant in the foreground (Ctrl-C stops everything)
	bash scripts/env-init.sh
	cd gateway && npm run --silent db:migrate && npm run --silent build:if-stale
	UV=$(UV) bash scripts/up.sh

dev: agent-deps gateway-deps ## Like up, with hot reload of the gateway and the agent
	bash scripts/env-init.sh
	cd gateway && npm run --silent db:migrate
	UV=$(UV) bash scripts/up.sh dev

agent: agent-deps ## Run the agent service in the foreground (AGENT_HOST:AGENT_PORT, default 127.0.0.1:8000)
	cd agent && exec $(UV) run --no-sync python main.py

gradio: agent-deps ## Run the Gradio developer console (127.0.0.1:GRADIO_PORT, default 7860)
	cd agent && exec $(UV) run --no-sync python gradio_app.py

gateway: gateway-deps ## Migrate, build when sources changed, and serve the webchat (127.0.0.1:GATEWAY_PORT, default 3000)
	cd gateway && npm run --silent db:migrate && npm run --silent build:if-stale && exec node scripts/start.mjs

test: system-deps test-agent test-gateway ## Install what is needed and run every test

test-agent: agent-deps
	cd agent && $(UV) run --no-sync ruff check . && $(UV) run --no-sync ruff format --check . && $(UV) run --no-sync mypy .
	cd agent && $(UV) run --no-sync pytest

test-gateway: gateway-deps agent-deps
	cd gateway && npm run --silent typecheck && npm run --silent lint && npm test
	cd gateway && UV=$(UV) npm run --silent e2e
	cd gateway && UV=$(UV) npm run --silent e2e:faults
	cd gateway && UV=$(UV) npm run --silent e2e:system

cron-install: ## Add the every-minute /api/cron line to your crontab (replacing an older one)
	bash scripts/cron-install.sh

bench: agent-deps gateway-deps ## Run the benchmarks and write bench/REPORT.md
	cd agent && $(UV) run --no-sync python -m bench.bench_agent
	cd gateway && BENCH_REPORT_DIR=../bench/results npm run --silent bench
	cd agent && { $(UV) sync --locked --group realmodel || echo "llama-cpp-python could not be installed: the real-model bench skips" >&2; } && $(UV) run --no-sync python -m bench.bench_real_model
	cd agent && $(UV) run --no-sync python -m bench.bench_model_cost
	cd agent && $(UV) run --no-sync python -m bench.report

soak: agent-deps gateway-deps ## Sustained load for SOAK_SECONDS (60 s, then drain): nothing lost or doubled, no memory growth; adds to bench/REPORT.md
	status=0; (cd gateway && UV=$(UV) BENCH_REPORT_DIR=../bench/results npm run --silent soak) || status=$$?; \
	  cd agent && $(UV) run --no-sync python -m bench.report && exit $$status
