"""The processes and turns of the real-model bench (bench/bench_real_model.py): the model server and the agent
service with the settings under test, the wait for the agent's warm-up, the three turns (sent to /run/stream, read by
bench/real_model_stream.py), and each turn's model calls as the model server recorded them."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.real_model_stream import step_figures, stream_turn
from tests.conftest import AGENT_DIR, free_port, service_env, spawn_service, wait_for_health
from tests.fakes.searxng import FakeSearxng

# The bench's log lines keep one logger name, whichever module writes them.
logger = logging.getLogger("bench.real_model")

RESULTS_DIR = AGENT_DIR.parent / "bench" / "results"
LOG_DIR = RESULTS_DIR / "logs"
MODEL_NAME = "smollm2:135m"
NUM_CTX = 4096
MAX_STEPS = 3
TIMEOUT_S = 200
MAX_OUTPUT_TOKENS = 512
TOOLS = "web_search,file_system"
START_TIMEOUT_S = 120
TURNS = (
    ("greeting", "Bonjour"),
    ("arithmetic", "Combien font 17 fois 23 ?"),
    ("web_search", "Cherche sur le web les nouveautés de Python 3.13 et résume-les en une phrase."),
)
EXCERPT_CHARS = 160


def start_model_server(gguf: Path, log_path: Path) -> tuple[subprocess.Popen[str], str]:
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.real_model_server", "--model", str(gguf), "--name", MODEL_NAME, "--port", "0"],
        cwd=AGENT_DIR,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the model server did not start (see {log_path})")
    return process, f"http://127.0.0.1:{line.split()[1]}"


def start_agent(
    tmp: Path,
    model_url: str,
    searx_url: str,
    log_path: Path,
    module: str | None = None,
    overrides: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """The agent service with the settings under test (and `overrides`): `python main.py`, or `python -m <module>`
    (an entry module such as bench.baseline_agent that changes one thing, then starts the service as main.py does)."""
    port = free_port()
    env = service_env(
        tmp,
        AGENT_PORT=str(port),
        OLLAMA_BASE_URL=model_url,
        SEARXNG_URL=searx_url,
        MODELS_FAST=MODEL_NAME,
        MODELS_SMART=MODEL_NAME,
        MODELS_MAIN=MODEL_NAME,
        AGENT_TOOLS=TOOLS,
        AGENT_MAX_STEPS=str(MAX_STEPS),
        AGENT_TIMEOUT_S=str(TIMEOUT_S),
        AGENT_MAX_OUTPUT_TOKENS=str(MAX_OUTPUT_TOKENS),
        OLLAMA_NUM_CTX=str(NUM_CTX),
        OLLAMA_KEEP_ALIVE="30m",
        OLLAMA_WARM_UP="true",
        OLLAMA_THINK="false",
    )
    env.update(overrides or {})
    if module is None:
        process = spawn_service(env, log_path)
    else:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module], cwd=AGENT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
            )
    url = f"http://127.0.0.1:{port}"
    if wait_for_health(process, url, START_TIMEOUT_S, probe_timeout_s=2):
        return process, url
    if process.poll() is not None:
        raise RuntimeError(f"the agent exited with {process.returncode} (see {log_path})")
    process.kill()
    raise RuntimeError(f"the agent did not start (see {log_path})")


def wait_for_warm_up(model_url: str, seen: int = 0, first_request_within_s: float = 15.0) -> None:
    """Let the agent's start-up warm-up (OLLAMA_WARM_UP) finish, so that its model call is not counted in a turn;
    `seen`: the model server's requests before this agent started."""
    started = time.monotonic()
    deadline = started + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{model_url}/_bench/status", timeout=10).json()
        except httpx.HTTPError:
            return
        if status["active"] == 0 and (status["requests"] > seen or time.monotonic() - started > first_request_within_s):
            return
        time.sleep(0.5)


_last_records: list[dict[str, Any]] = []


def model_records(model_url: str) -> list[dict[str, Any]]:
    """The model server's records; the last ones seen if it stopped answering (a crash shows in the turns)."""
    global _last_records
    try:
        _last_records = httpx.get(f"{model_url}/_bench/requests", timeout=10).json()
    except httpx.HTTPError as exc:
        logger.warning("model server unreachable (%s); see %s", type(exc).__name__, LOG_DIR / "real_model_server.log")
    return _last_records


def summarise_calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    chats = [
        c for c in calls if c["path"] in ("/api/chat", "/api/generate") and c["done_reason"] not in ("load", "unload")
    ]
    return {
        "model_calls": len(chats),
        "max_prompt_tokens": max((c["prompt_tokens_full"] for c in chats), default=0),
        "num_ctx": max((c["num_ctx"] for c in chats), default=NUM_CTX),
        "overflows": sum(1 for c in chats if c["overflow"]),
        "messages_dropped": sum(c["messages_dropped"] for c in chats),
        "prompt_tokens": sum(c["prompt_tokens"] for c in chats),
        "evaluated_tokens": sum(c["evaluated_tokens"] for c in chats),
        "output_tokens": sum(c["output_tokens"] for c in chats),
        "model_seconds": round(sum(c["seconds"] for c in chats), 1),
        "done_reasons": sorted({c["done_reason"] for c in chats if c["done_reason"]}),
        "num_predict": sorted({c["num_predict"] for c in chats}),
        "refused": sum(1 for c in calls if c["status"] != 200),
        # The agent stops reading at the end of the first complete code block, which closes the stream.
        "streams_closed_by_agent": sum(1 for c in chats if c.get("error") == "client_closed"),
        "calls": [
            {
                k: c[k]
                for k in (
                    "prompt_tokens_full",
                    "prompt_tokens",
                    "reused_tokens",
                    "evaluated_tokens",
                    "output_tokens",
                    "seconds",
                    "overflow",
                    "done_reason",
                )
            }
            for c in chats
        ],
    }


def run_turns(agent_url: str, model_url: str, searx: FakeSearxng, label: str = "") -> list[dict[str, Any]]:
    """The three turns sent to /run/stream, each with the previous turns (those answered) as history."""
    turns: list[dict[str, Any]] = []
    history: list[dict[str, str]] = []
    with httpx.Client(base_url=agent_url, timeout=TIMEOUT_S + 60) as client:
        for name, message in TURNS:
            seen = len(model_records(model_url))
            searches = len(searx.queries)
            sys.stderr.write(f"real model{label}: turn {name!r} ...\n")
            started = time.monotonic()
            streamed = stream_turn(client, message, history)
            wall = time.monotonic() - started
            body, status = streamed.body, streamed.status
            answer = str(body.get("response") or "")
            turn: dict[str, Any] = {
                "turn": name,
                "status": status,
                "code": body.get("code"),
                "finished": body.get("finished"),
                "steps": body.get("steps"),
                "wall_s": round(wall, 1),
                "usage": body.get("usage"),
                "searches": len(searx.queries) - searches,
                "answer_chars": len(answer),
                "answer_excerpt": (answer or str(body.get("error") or ""))[:EXCERPT_CHARS],
                "events": dict(sorted(streamed.events.items())),
                **step_figures(streamed.steps),
                **summarise_calls(model_records(model_url)[seen:]),
            }
            turns.append(turn)
            sys.stderr.write(
                f"real model{label}: turn {name!r}: HTTP {status} code={turn['code']} finished={turn['finished']} "
                f"steps={turn['steps']} ({turn['parsed_steps']} parsed, {turn['tool_steps']} calling a tool, "
                f"{turn['code_errors']} code errors) {turn['wall_s']} s, {turn['model_calls']} model calls, "
                f"max prompt {turn['max_prompt_tokens']}/{turn['num_ctx']} tokens, {turn['overflows']} overflows\n"
            )
            if status == 200 and answer:
                history += [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]
    return turns
