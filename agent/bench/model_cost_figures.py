"""The figures of the model-cost bench (bench/bench_model_cost.py): what the fake Ollama recorded per request
(`_sim`), summed per turn and per configuration, simulated seconds for both hardware profiles, and the targets."""

from __future__ import annotations

from typing import Any

from tests.fakes.ollama_sim import COUNT_KEYS, PROFILES

TARGETS = {
    "first_bonjour_cpu_s": 12.0,
    "search_2_steps_cpu_s": 40.0,
    "system_prompt_tokens": 2000,
}
TOTAL_KEYS = (
    "model_requests",
    "prompt_tokens",
    "evaluated_tokens",
    "image_tokens",
    "thinking_tokens",
    "output_tokens",
    "loads",
    "truncated_messages",
    "over_num_ctx",
    "cpu_s",
    "gpu_s",
)


def request_cost(sim: dict[str, Any], profile: str) -> float:
    rates = PROFILES[profile]
    evaluated = int(sim.get("evaluated_tokens") or 0)
    output = int(sim.get("output_tokens") or 0)
    return rates.load_s * bool(sim.get("loaded")) + evaluated / rates.prompt_tps + output / rates.output_tps


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The model-side figures of a list of recorded /api/chat and /api/generate requests."""
    sims = [r["body"].get("_sim") or {} for r in records]
    total = {key: sum(int(s.get(key) or 0) for s in sims) for key in COUNT_KEYS}
    largest = max(sims, key=lambda s: int(s.get("prompt_tokens_before_truncation") or 0), default={})
    return {
        "model_requests": len(records),
        "paths": sorted({r["path"] for r in records}),
        **total,
        "loads": sum(bool(s.get("loaded")) for s in sims),
        "thinking_requests": sum(bool(s.get("think")) for s in sims),
        "cpu_s": round(sum(request_cost(s, "cpu") for s in sims), 1),
        "gpu_s": round(sum(request_cost(s, "gpu") for s in sims), 1),
        "fake_sim_s": round(sum(float(s.get("sim_seconds") or 0) for s in sims), 1),
        "largest_prompt_tokens": int(largest.get("prompt_tokens_before_truncation") or 0),
        "largest_prompt_num_ctx": int(largest.get("num_ctx") or 0),
        "over_num_ctx": sum(
            int(s.get("prompt_tokens_before_truncation") or 0) > int(s.get("num_ctx") or 0) for s in sims
        ),
        "errors": sum(int(s.get("status") or 200) != 200 for s in sims),
    }


def model_records(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["path"] in ("/api/chat", "/api/generate")]


def totals(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """A configuration's figures over its turns (seconds rounded to a tenth)."""
    return {
        key: round(sum(t[key] for t in turns), 1) if key.endswith("_s") else sum(t[key] for t in turns)
        for key in TOTAL_KEYS
    }


def targets(new: dict[str, Any]) -> list[dict[str, Any]]:
    turns = {t["turn"]: t for t in new.get("turns") or []}
    first = turns.get("bonjour (first after start)", {}).get("cpu_s")
    search = turns.get("web search (2 steps)", {}).get("cpu_s")
    system = new.get("system_prompt_tokens")
    records = [*(new.get("turns") or []), new.get("warm_up") or {}]
    over = sum(int(t.get("over_num_ctx") or 0) + int(t.get("truncated_messages") or 0) for t in records)
    complete = len(turns) == 6 and not new.get("failed")
    return [
        _target("first 'Bonjour' after start, simulated CPU s", first, TARGETS["first_bonjour_cpu_s"]),
        _target("2-step web search, simulated CPU s", search, TARGETS["search_2_steps_cpu_s"]),
        {
            "target": "no prompt over num_ctx, no truncated message (new code)",
            "value": over if complete else None,
            "limit": 0,
            "met": complete and over == 0,
        },
        _target("system prompt tokens (new code, first turn)", system, TARGETS["system_prompt_tokens"]),
    ]


def _target(name: str, value: float | None, limit: float) -> dict[str, Any]:
    return {"target": name, "value": value, "limit": limit, "met": value is not None and value <= limit}
