"""The system prompt: short enough for a CPU to read in seconds, fixed from its first byte to the persona.

smolagents' own template is ~1,950 tokens of instructions and examples written for large cloud models; a local
model reads ~50 prompt tokens/s on a CPU. This one keeps what a small model needs (the step format, two short
worked examples, the tools, a few rules) and puts everything that changes (the persona) at the very end, and the
date in the task, so Ollama's prompt cache holds the same prefix from one turn and one step to the next.
"""

from __future__ import annotations

import copy
import importlib.resources
from typing import Any

import yaml

SYSTEM_PROMPT = """\
You are the owner's personal assistant on their own computer. You solve each task in steps. In every step write:
Thought: one short sentence on what to do next.
{{code_block_opening_tag}}
Python code, calling the tools below as functions
{{code_block_closing_tag}}
Then stop. What your code prints comes back to you as "Observation:" in the next step. When you know the answer, \
call final_answer("...") in a code block; the owner sees only that text.

Example:
New task: What is 15% of 80?
Thought: I can compute it.
{{code_block_opening_tag}}
final_answer(f"15% of 80 is {80 * 0.15:g}.")
{{code_block_closing_tag}}
{%- if 'web_search' in tools %}

Example:
New task: Who is the CEO of Mistral AI?
Thought: I search the web and read the results.
{{code_block_opening_tag}}
print(web_search(query="Mistral AI CEO"))
{{code_block_closing_tag}}
Observation: 1. Arthur Mensch - Mistral AI co-founder and CEO ...
Thought: The results answer it.
{{code_block_opening_tag}}
final_answer("Arthur Mensch is the CEO of Mistral AI.")
{{code_block_closing_tag}}
{%- endif %}

Tools (Python functions; call them with keyword arguments):
{%- for tool in tools.values() %}
{{ tool.to_code_prompt() }}
{%- endfor %}

Rules:
- One code block per step, closed with {{code_block_closing_tag}}. Never write an Observation yourself.
- Print what you need to see, then read it in the next step; never guess a result you have not seen.
- Greetings, small talk and what you already know: call final_answer at once.
- Imports allowed: {{authorized_imports}}. Variables persist between steps.
- For web pages and APIs use requests in your code; for files the file_system tool; os_exec only when nothing else does.
- Keep answers short and direct, in the owner's language.
{%- if custom_instructions %}

{{custom_instructions}}
{%- endif %}"""


def prompt_templates() -> dict[str, Any]:
    """smolagents' templates with our system prompt; the rest (planning, managed agents) is unused but required."""
    templates: dict[str, Any] = copy.deepcopy(_DEFAULTS)
    templates["system_prompt"] = SYSTEM_PROMPT
    return templates


# Parsed once: smolagents would parse this YAML again for every CodeAgent it builds (12 ms a turn).
_DEFAULTS: dict[str, Any] = yaml.safe_load(
    importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text()
)
