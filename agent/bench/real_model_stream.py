"""One turn of the real-model bench sent to `POST /run/stream`, and what its step events say about tool use.

The SSE stream is `event: <name>` and `data: <json>` lines, a blank line after each event: `delta`, `thinking`,
`step` (`{"step", "tool_calls": [{"name", "arguments"}], "observation", "error", "duration_ms"}`), `approval`, then
`final` (the /run body) or `error` (`{"error", "code"}`). A refusal before the run starts (413, 422, 503) is a plain
JSON error body with its HTTP status.

From the step events, per turn: steps, steps whose code parsed (the agent's NO_CODE_ERROR marks a reply without a
code block), steps that called one of the agent's tools (any name but `python_interpreter`, which stands for code
that calls none; `final_answer` counts), which tools, and code errors (any other step error).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from claw_agent import NO_CODE_ERROR

# "Your reply had no code block": the step error of a reply the agent could not parse.
NO_CODE_PREFIX = NO_CODE_ERROR.split(".", 1)[0]
PLAIN_CODE = "python_interpreter"


@dataclass
class StreamedTurn:
    status: int | str
    body: dict[str, Any] = field(default_factory=dict)  # the `final` or `error` event, or the refusal's JSON body
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)


def stream_turn(client: httpx.Client, message: str, history: list[dict[str, str]]) -> StreamedTurn:
    """Send one turn to /run/stream and read its events to the end."""
    try:
        with client.stream("POST", "/run/stream", json={"message": message, "history": history}) as response:
            turn = StreamedTurn(status=response.status_code)
            if response.status_code != 200:
                response.read()
                try:
                    turn.body = response.json()
                except ValueError:
                    turn.body = {}
                return turn
            for name, data in _events(response.iter_lines()):
                turn.events[name] += 1
                if name == "step":
                    turn.steps.append(data)
                elif name in ("final", "error"):
                    turn.body = data
            return turn
    except httpx.HTTPError as exc:
        return StreamedTurn(status=f"client error: {type(exc).__name__}")


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, decoded data) for each event of an SSE stream."""
    name = "message"
    data: list[str] = []
    for line in itertools.chain(lines, [""]):  # a last blank line ends a last event the stream did not end
        if line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].removeprefix(" "))
        elif not line and data:
            yield name, _decode("\n".join(data))
            name, data = "message", []


def _decode(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except ValueError:
        return {"raw": text}
    return payload if isinstance(payload, dict) else {"value": payload}


def step_figures(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """What a turn's step events say about the format and tool use."""
    no_code = sum(1 for s in steps if str(s.get("error") or "").startswith(NO_CODE_PREFIX))
    tool_steps = [s for s in steps if _tools(s)]
    called = Counter(name for s in steps for name in _tools(s))
    return {
        "step_events": len(steps),
        "parsed_steps": len(steps) - no_code,
        "no_code_steps": no_code,
        "tool_steps": len(tool_steps),
        "final_answer_steps": sum(1 for s in steps if "final_answer" in _tools(s)),
        "tools_called": dict(sorted(called.items())),
        "code_errors": sum(1 for s in steps if s.get("error") and not str(s["error"]).startswith(NO_CODE_PREFIX)),
        "error_excerpts": [str(s["error"])[:120] for s in steps if s.get("error")],
    }


def _tools(step: dict[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in step.get("tool_calls") or [] if c.get("name") != PLAIN_CODE]


TOTAL_KEYS = (
    "steps",
    "parsed_steps",
    "no_code_steps",
    "tool_steps",
    "final_answer_steps",
    "code_errors",
    "searches",
    "model_calls",
    "evaluated_tokens",
    "output_tokens",
    "overflows",
)


def config_totals(turns: list[dict[str, Any]], before_turns: dict[str, Any]) -> dict[str, Any]:
    """One configuration's totals over its turns, and its system prompt's size in the model's own tokens."""
    totals: dict[str, Any] = {
        "turns": len(turns),
        "turns_http_200": sum(1 for t in turns if t.get("status") == 200),
        "turns_finished": sum(1 for t in turns if t.get("finished") is True),
    }
    for key in TOTAL_KEYS:
        source = "step_events" if key == "steps" else key
        totals[key] = sum(int(t.get(source) or 0) for t in turns)
    totals["format_compliance"] = round(totals["parsed_steps"] / totals["steps"], 2) if totals["steps"] else None
    totals["model_seconds"] = round(sum(float(t.get("model_seconds") or 0) for t in turns), 1)
    totals["wall_s"] = round(sum(float(t.get("wall_s") or 0) for t in turns), 1)
    totals["max_prompt_tokens"] = max((int(t.get("max_prompt_tokens") or 0) for t in turns), default=0)
    # The warm-up sends the system prompt alone, as one system message: its prompt is that prompt (with the chat
    # template's few tokens around it).
    warm = before_turns.get("calls") or []
    totals["system_prompt_tokens"] = warm[0]["prompt_tokens_full"] if warm else None
    return totals
