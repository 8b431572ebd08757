"""Agent service benchmark: per-turn overhead against the fake model, first-request latency, prompt size.

Run with `make bench` (or `uv run python -m bench.bench_agent` from agent/). Figures go to
`bench/results/agent.json` and the agent section of `bench/REPORT.md` at the repository root.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import AGENT_DIR, free_port, service_env
from tests.fakes.ollama import FakeOllama

logger = logging.getLogger("bench.agent")
logging.getLogger("httpx").setLevel(logging.WARNING)
RESULTS_DIR = AGENT_DIR.parent / "bench" / "results"
TURNS = 200
TARGET_OVERHEAD_P50_MS = 30.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def model_ms(fake: FakeOllama, since: int) -> tuple[float, int]:
    chats = [r for r in fake.state.requests[since:] if r["path"] == "/api/chat"]
    return sum(r["body"].get("_model_ms", 0.0) for r in chats), len(fake.state.requests)


def run() -> dict[str, object]:
    fake = FakeOllama().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    port = free_port()
    env = service_env(tmp, AGENT_PORT=str(port), OLLAMA_BASE_URL=fake.url, SEARXNG_URL="http://127.0.0.1:9")
    spawned = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "main.py"], cwd=AGENT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            ready_s = time.monotonic() - spawned
            first_started = time.monotonic()
            first = client.post("/run", json={"message": "Hello"}).json()
            first_ms = (time.monotonic() - first_started) * 1000

            # Baseline measured in the same run: a bare HTTP round trip to the service.
            health_ms = []
            for _ in range(50):
                started = time.monotonic()
                client.get("/health")
                health_ms.append((time.monotonic() - started) * 1000)

            overhead_ms: list[float] = []
            total_ms: list[float] = []
            for _ in range(TURNS):
                seen = len(fake.state.requests)
                started = time.monotonic()
                response = client.post("/run", json={"message": "Hello"})
                elapsed = (time.monotonic() - started) * 1000
                assert response.status_code == 200, response.text
                inside_model, _ = model_ms(fake, seen)
                total_ms.append(elapsed)
                overhead_ms.append(elapsed - inside_model)

        prompt = next(r for r in fake.state.requests if r["path"] == "/api/chat")["body"]["messages"]
        prompt_chars = sum(len(str(m.get("content", ""))) for m in prompt)
        system_chars = len(str(prompt[0].get("content", "")))
        results: dict[str, object] = {
            "turns": TURNS,
            "service_ready_s": round(ready_s, 2),
            "first_request_ms": round(first_ms, 1),
            "overhead_p50_ms": round(percentile(overhead_ms, 0.5), 1),
            "overhead_p95_ms": round(percentile(overhead_ms, 0.95), 1),
            "turn_p50_ms": round(percentile(total_ms, 0.5), 1),
            "baseline_health_p50_ms": round(statistics.median(health_ms), 2),
            "overhead_vs_baseline": round(percentile(overhead_ms, 0.5) / max(statistics.median(health_ms), 0.01), 1),
            "prompt_chars_hello_all_tools": prompt_chars,
            "system_prompt_chars": system_chars,
            "prompt_tokens_hello_all_tools": first["usage"]["input_tokens"],
            "target_overhead_p50_ms": TARGET_OVERHEAD_P50_MS,
        }
        results["overhead_target_met"] = results["overhead_p50_ms"] <= TARGET_OVERHEAD_P50_MS  # type: ignore[operator]
        return results
    finally:
        process.terminate()
        process.wait(timeout=10)
        fake.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = run()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "agent.json").write_text(json.dumps(results, indent=2) + "\n")
    logger.info(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
