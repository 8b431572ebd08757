# my-claw: every target installs what it needs first and is safe to run again.
SHELL := bash
.DEFAULT_GOAL := help
.PHONY: help up agent gradio test test-agent bench system-deps agent-deps

UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
AGENT_STAMP := agent/.venv/.synced

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet uv

$(AGENT_STAMP): agent/pyproject.toml agent/uv.lock | $(UV)
	cd agent && $(UV) sync --locked
	touch $@

agent-deps: $(AGENT_STAMP)

system-deps: ## Install the Debian packages the tests need (xvfb, xclip, xdotool), when missing and root
	bash scripts/system-deps.sh

up: agent-deps ## Run the whole assistant in the foreground (Ctrl-C stops everything)
	UV=$(UV) bash scripts/up.sh

agent: agent-deps ## Run the agent service in the foreground (AGENT_HOST:AGENT_PORT, default 127.0.0.1:8000)
	cd agent && exec $(UV) run --no-sync python main.py

gradio: agent-deps ## Run the Gradio developer console (127.0.0.1:GRADIO_PORT, default 7860)
	cd agent && exec $(UV) run --no-sync python gradio_app.py

test: system-deps test-agent ## Install what is needed and run every test

test-agent: agent-deps
	cd agent && $(UV) run --no-sync ruff check . && $(UV) run --no-sync ruff format --check . && $(UV) run --no-sync mypy .
	cd agent && $(UV) run --no-sync pytest

bench: agent-deps ## Run the benchmarks and write bench/REPORT.md
	cd agent && $(UV) run --no-sync python -m bench.bench_agent
	cd agent && $(UV) run --no-sync python -m bench.report
