"""Turn the JSON figures in bench/results/ into bench/REPORT.md."""

from __future__ import annotations

import json
import logging
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
REPORT = RESULTS_DIR.parent / "REPORT.md"
REAL_MODEL = "real_model.json"
MODEL_COST = "model_cost.json"


def flatten(figures: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested figures as dotted keys (turns.overhead_ms.p50), so each is one row of the table."""
    rows: dict[str, object] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.update(flatten(value, f"{name}."))
        else:
            rows[name] = value
    return rows


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_real_model(figures: dict[str, Any]) -> list[str]:
    """The "Real small model" section: one row per turn of the real agent against SmolLM2 through llama.cpp."""
    lines = ["", "## Real small model", ""]
    model = f"`{figures.get('model', '?')}` ({figures.get('gguf', '?')})"
    if figures.get("skipped") or figures.get("failed"):
        what = "skipped" if figures.get("skipped") else "failed"
        reason = figures.get("skipped") or figures.get("failed")
        return [*lines, f"Not run ({what}): {reason}. Model: {model}."]
    lines += [
        f"The real agent service against {model} served by llama-cpp-python {figures.get('llama_cpp_python', '?')} "
        f"behind an Ollama-compatible server (`agent/bench/real_model_server.py`), on {figures.get('cpus', '?')} CPUs: "
        f"num_ctx {figures.get('num_ctx')}, AGENT_MAX_STEPS={figures.get('max_steps')}, "
        f"AGENT_TIMEOUT_S={figures.get('agent_timeout_s')}, tools {figures.get('tools')}. The model is far too small "
        "to follow the CodeAgent format: this shows what an unscripted model does to a turn. Tokens are counted by "
        "the model's own tokenizer; *evaluated* is what llama.cpp read again after reusing the cached prefix.",
        "",
        "| turn | HTTP | code | finished | steps | wall s | model calls | max prompt / num_ctx | overflows "
        "| evaluated / prompt tokens | output tokens | model s | done reasons |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for turn in figures.get("turns") or []:
        cells = [
            turn.get("turn"),
            turn.get("status"),
            turn.get("code") or "",
            turn.get("finished"),
            turn.get("steps"),
            turn.get("wall_s"),
            turn.get("model_calls"),
            f"{turn.get('max_prompt_tokens')} / {turn.get('num_ctx')}",
            turn.get("overflows"),
            f"{turn.get('evaluated_tokens')} / {turn.get('prompt_tokens')}",
            turn.get("output_tokens"),
            turn.get("model_seconds"),
            ", ".join(turn.get("done_reasons") or []),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    warm = figures.get("before_turns") or {}
    lines += [
        "",
        f"Before the first turn (the agent's warm-up): {warm.get('model_calls', 0)} model calls, "
        f"{warm.get('evaluated_tokens', 0)} prompt tokens read, {warm.get('model_seconds', 0)} s in the model.",
        "",
        f"Agent ready in {figures.get('agent_ready_s')} s; in the whole run (every configuration below) "
        f"{figures.get('model_requests')} model requests, {figures.get('model_loads')} model loads (another num_ctx "
        f"reloads the model); keep_alive sent {figures.get('keep_alive_sent')}, "
        f"think sent {figures.get('think_sent')}; the turns above HTTP 200: {figures.get('all_turns_http_200')}; "
        f"total {figures.get('total_s')} s (one sampled run; 1-minute load average {figures.get('load_average_start')} "
        f"at the start, {figures.get('load_average_end')} at the end: other work slows llama.cpp on a few cores).",
    ]
    if figures.get("model_server_exit") is not None:
        lines += ["", f"The model server died during the run (exit {figures['model_server_exit']}): see its log."]
    excerpts = [(t.get("turn"), t.get("answer_excerpt")) for t in figures.get("turns") or [] if t.get("answer_excerpt")]
    if excerpts:
        lines += ["", "What came back (first characters):", ""]
        lines += [f"- {name}: {_cell(text)}" for name, text in excerpts]
    return lines + render_prompt_comparison(figures.get("configs") or {})


def render_prompt_comparison(configs: dict[str, Any]) -> list[str]:
    """Our system prompt next to smolagents' own, the same turns against the same model server in the same run."""
    if not configs:
        return []
    lines = [
        "",
        "### Our system prompt against smolagents' own",
        "",
        "The same three turns, settings and model server in the same run, with the agent as it is (*ours*, "
        "`agent/prompt.py`) and with smolagents' own prompt templates (*smolagents*, `agent/bench/baseline_agent.py`), "
        "which at the same num_ctx leave no room for a turn; so they run once more with twice the context, the one "
        "setting changed. Read from `/run/stream`'s step events. *System prompt* is the warm-up's "
        "prompt (the system prompt alone) in the model's tokens; a *parsed* step had a code block; a *tool* step "
        "called one of the agent's tools (final_answer included); *code errors* are the other step errors.",
        "",
        "| config | system prompt tokens | largest prompt / num_ctx | turns HTTP 200 | finished | steps "
        "| parsed (format compliance) | tool steps | of which final_answer | code errors | searches | model calls "
        "| evaluated tokens | output tokens | model s | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, config in configs.items():
        t = config.get("totals") or {}
        if not t:
            lines.append(f"| {name} | not run: {_cell(config.get('failed') or '?')} |" + " |" * 14)
            continue
        num_ctx = (config.get("env") or {}).get("OLLAMA_NUM_CTX") or max(
            (turn.get("num_ctx") or 0 for turn in config.get("turns") or []), default=0
        )
        cells = [
            name,
            t.get("system_prompt_tokens"),
            f"{t.get('max_prompt_tokens')} / {num_ctx}" if t.get("model_calls") else f"no call / {num_ctx}",
            f"{t.get('turns_http_200')} / {t.get('turns')}",
            t.get("turns_finished"),
            t.get("steps"),
            f"{t.get('parsed_steps')} ({t.get('format_compliance') if t.get('steps') else 'no step'})",
            t.get("tool_steps"),
            t.get("final_answer_steps"),
            t.get("code_errors"),
            t.get("searches"),
            t.get("model_calls"),
            t.get("evaluated_tokens"),
            t.get("output_tokens"),
            t.get("model_seconds"),
            t.get("wall_s"),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, "", _comparison_sentence(configs)]


def _comparison_sentence(configs: dict[str, Any]) -> str:
    """What the table shows: whether the shorter prompt lowered format compliance or tool use, and what it cost."""
    ours = (configs.get("ours") or {}).get("totals") or {}
    if not ours:
        return "The agent as it is did not run: nothing to compare."
    parts = ["The 135M model is far too small to follow the CodeAgent format with either prompt."]
    for name, config in configs.items():
        base = config.get("totals") or {}
        if name == "ours" or not base:
            continue
        if not base.get("turns_http_200"):
            excerpt = next((t.get("answer_excerpt") for t in config.get("turns") or []), "") or ""
            parts.append(
                f"*{name}*: the agent refused every turn before calling the model ({_codes(config)}: "
                f"{_cell(excerpt.split('(', 1)[-1].split(')', 1)[0])}), with a system prompt of "
                f"{base.get('system_prompt_tokens')} tokens by the model's count against {ours.get('system_prompt_tokens')}."
            )
            continue
        worse = (ours.get("format_compliance") or 0) < (base.get("format_compliance") or 0) or (
            ours.get("tool_steps") or 0
        ) < (base.get("tool_steps") or 0)
        verdict = (
            "did worse on format compliance or tool use" if worse else "lowered neither format compliance nor tool use"
        )
        parts.append(
            f"Next to *{name}*, the shorter prompt {verdict} (parsed steps "
            f"{ours.get('parsed_steps')}/{ours.get('steps')} against {base.get('parsed_steps')}/{base.get('steps')}, "
            f"tool steps {ours.get('tool_steps')} against {base.get('tool_steps')}, searches {ours.get('searches')} "
            f"against {base.get('searches')}), with a system prompt of {ours.get('system_prompt_tokens')} tokens "
            f"instead of {base.get('system_prompt_tokens')} and {ours.get('model_seconds')} s in the model instead of "
            f"{base.get('model_seconds')} s (one sampled run)."
        )
    return " ".join(parts)


def _codes(config: dict[str, Any]) -> str:
    codes = sorted({f"HTTP {t.get('status')} {t.get('code') or ''}".strip() for t in config.get("turns") or []})
    return ", ".join(codes)


def render_model_cost(figures: dict[str, Any]) -> list[str]:
    """The "Model-side cost" section: per turn, what the model reads, writes and loads, baseline next to new code."""
    profiles = figures.get("profiles") or {}
    rates = ", ".join(
        f"{name} {p.get('load_s')} s load, {p.get('prompt_tps')} prompt tok/s, {p.get('output_tps')} output tok/s"
        for name, p in profiles.items()
    )
    lines = [
        "",
        "## Model-side cost",
        "",
        f"The same task set, the same scripted CodeAgent answers, against the realistic fake Ollama "
        f"(`tests/fakes/ollama_sim.py`, Qwen tokens): the working tree (*new*) and commit "
        f"{figures.get('baseline_commit')} (*baseline*) in the same run. *Evaluated* is what the model reads after "
        "its prefix cache; *output* includes thinking. Seconds are computed from the recorded counts: "
        f"load × loads + evaluated / prompt rate + output / output rate ({rates}); image tokens are prompt tokens. "
        f"Tools: {figures.get('tools')}; a {figures.get('text_file_bytes')}-byte text file; {figures.get('photo')}. "
        "The fake ran the CPU profile (its loads and keep_alive expiries); GPU seconds apply the GPU rates to the "
        "same counts. The warm-up at start-up is paid before the first message, not in a turn.",
        "",
        "| config | turn | HTTP | finished | model requests | prompt tokens | evaluated | image | thinking | output "
        "| loads | CPU s | GPU s | largest prompt / num_ctx | truncated msgs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("baseline", "new"):
        config = figures.get(name) or {}
        if not config.get("turns"):
            lines.append(f"| {name} | not available: {_cell(config.get('failed') or 'not run')} |" + " |" * 13)
            continue
        rows: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
            ("warm-up at start-up", config.get("warm_up") or {}, {})
        ]
        rows += [(t.get("turn"), t, t) for t in config["turns"]]
        rows.append(("**total**", config.get("totals") or {}, {}))
        for turn, cost, status in rows:
            largest = f"{cost.get('largest_prompt_tokens')} / {cost.get('largest_prompt_num_ctx')}"
            cells = [
                name,
                turn,
                status.get("status", ""),
                status.get("finished", ""),
                cost.get("model_requests"),
                cost.get("prompt_tokens"),
                cost.get("evaluated_tokens"),
                cost.get("image_tokens"),
                cost.get("thinking_tokens"),
                cost.get("output_tokens"),
                cost.get("loads"),
                cost.get("cpu_s"),
                cost.get("gpu_s"),
                largest if "largest_prompt_tokens" in cost and cost.get("model_requests") else "",
                cost.get("truncated_messages"),
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        if config.get("failed"):
            lines.append(f"| {name} | failed: {_cell(config['failed'])} |" + " |" * 13)
    system = {name: (figures.get(name) or {}).get("system_prompt_tokens") for name in ("baseline", "new")}
    lines += [
        "",
        f"System prompt (first turn): new {system['new']} tokens, baseline {system['baseline']} tokens.",
        "",
        "| target (new code) | value | limit | met |",
        "| --- | --- | --- | --- |",
    ]
    for target in figures.get("targets") or []:
        met = "pass" if target.get("met") else "FAIL"
        lines.append(f"| {_cell(target.get('target'))} | {target.get('value')} | {target.get('limit')} | {met} |")
    return lines


def render() -> str:
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"({platform.machine()}, Python {platform.python_version()}). Fake model servers: the figures measure "
        "my-claw's own overhead, not a model's speed (except in the real small model's section).",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        figures = json.loads(path.read_text())
        if path.name in (REAL_MODEL, MODEL_COST):
            continue
        lines += ["", f"## {path.stem}", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {value} |" for key, value in flatten(figures).items()]
    real = RESULTS_DIR / REAL_MODEL
    if real.is_file():
        lines += render_real_model(json.loads(real.read_text()))
    cost = RESULTS_DIR / MODEL_COST
    if cost.is_file():
        lines += render_model_cost(json.loads(cost.read_text()))
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    REPORT.write_text(render())
    logging.getLogger("bench.report").info("wrote %s", REPORT)


if __name__ == "__main__":
    main()
