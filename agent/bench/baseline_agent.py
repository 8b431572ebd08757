"""The agent service with smolagents' own prompt templates, for the real-model bench's `smolagents` configuration.

Everything else is the production service, started as `python main.py` starts it (`main.serve()`: the settings from
the environment, uvicorn on AGENT_HOST:AGENT_PORT); only `prompt.prompt_templates`, and the name `claw_agent` imported
from it, return smolagents' templates unchanged (smolagents/prompts/code_agent.yaml, the ~2,000-token system prompt
that agent/prompt.py replaced). The runner renders the system prompt through `claw_agent.build_agent`, so the turns,
the context budget and the warm-up all read the same prompt.

Run from agent/: `python -m bench.baseline_agent`, with the same environment as `python main.py`.
"""

from __future__ import annotations

import copy
from typing import Any

import claw_agent
import prompt


def smolagents_templates() -> dict[str, Any]:
    """smolagents' own templates, as smolagents' CodeAgent would load them."""
    templates: dict[str, Any] = copy.deepcopy(prompt._DEFAULTS)
    return templates


def use_smolagents_prompt() -> None:
    """Replace the production templates wherever they are looked up by name."""
    prompt.prompt_templates = smolagents_templates
    claw_agent.prompt_templates = smolagents_templates


def main() -> None:
    use_smolagents_prompt()
    import main as service  # after the replacement, although build_agent looks the name up at each call anyway

    service.serve()


if __name__ == "__main__":
    main()
