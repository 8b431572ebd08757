"""One configuration of the model-cost bench (bench/bench_model_cost.py): the agent service from an agent/ folder,
started against the shared fake Ollama and SearXNG, sent the task set turn by turn, each turn's model requests
summed (bench/model_cost_figures.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.model_cost_figures import model_records, summarise, totals
from tests.conftest import AGENT_DIR, free_port, service_env, spawn_service, stop_process, wait_for_health
from tests.fakes.ollama import FakeOllama
from tests.fakes.searxng import FakeSearxng
from tests.fakes.tokens import count_tokens

# The bench's log lines keep one logger name, whichever module writes them.
logger = logging.getLogger("bench.model_cost")
TOOLS = "web_search,file_system,analyze_image"
TURN_TIMEOUT_S = 300.0
START_TIMEOUT_S = 90


class Run:
    """One configuration: a service process from `agent_dir` against the shared fakes."""

    def __init__(self, name: str, agent_dir: Path, tmp: Path, ollama: FakeOllama, searx: FakeSearxng) -> None:
        self.name, self.agent_dir, self.tmp = name, agent_dir, tmp
        self.ollama = httpx.Client(base_url=ollama.url, timeout=30)
        self.fake = ollama
        self.searx_url = searx.url
        self.log_path = tmp / f"agent-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **overrides: str) -> str:
        port = free_port()
        env = service_env(
            self.tmp,
            AGENT_PORT=str(port),
            OLLAMA_BASE_URL=self.fake.url,
            SEARXNG_URL=self.searx_url,
            AGENT_TOOLS=TOOLS,
            **overrides,
        )
        # The baseline's agent/ folder has no virtual environment of its own: both run with this one.
        python = AGENT_DIR / ".venv" / "bin" / "python"
        interpreter = str(python) if python.exists() else sys.executable
        self.process = spawn_service(env, self.log_path, cwd=self.agent_dir, python=interpreter)
        url = f"http://127.0.0.1:{port}"
        if wait_for_health(self.process, url, START_TIMEOUT_S, probe_timeout_s=2):
            return url
        if self.process.poll() is not None:
            raise RuntimeError(f"agent exited with {self.process.returncode}: {self.log_tail()}")
        raise RuntimeError(f"agent did not start in {START_TIMEOUT_S} s: {self.log_tail()}")

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def requests(self) -> list[dict[str, Any]]:
        return self.ollama.get("/_fake/requests").json()

    def wait_for_warm_up(self, timeout_s: float = 60) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(r["path"] == "/api/chat" for r in self.requests()):
                time.sleep(0.5)  # let a second warm-up request, if any, land in the warm-up row too
                return True
            time.sleep(0.1)
        return False

    def execute(self, tasks: list[dict[str, Any]], warm_up: bool, **overrides: str) -> dict[str, Any]:
        self.ollama.post("/_fake/reset")
        self.ollama.post("/_fake/script", json={"profile": "cpu"})
        result: dict[str, Any] = {"available": True, "turns": []}
        try:
            url = self.start(**overrides)
            if warm_up:
                result["warm_up_seen"] = self.wait_for_warm_up()
            seen = self.requests()
            result["warm_up"] = summarise(model_records(seen))
            answers: list[str] = []
            with httpx.Client(base_url=url, timeout=TURN_TIMEOUT_S) as client:
                for task in tasks:
                    body = dict(task["body"])
                    if "history_of" in task:
                        first = tasks[task["history_of"]]
                        reply = answers[task["history_of"]] if len(answers) > task["history_of"] else ""
                        body["history"] = [
                            {"role": "user", "content": first["body"]["message"]},
                            {"role": "assistant", "content": reply},
                        ]
                    if task["answers"]:
                        self.ollama.post("/_fake/script", json={"answers": task["answers"]})
                    started = time.monotonic()
                    try:
                        response = client.post("/run", json=body)
                        status, payload = response.status_code, _json(response)
                    except httpx.HTTPError as exc:
                        status, payload = 0, {"error": f"{type(exc).__name__}: {exc}"}
                    wall = time.monotonic() - started
                    with self.fake.state.lock:  # answers a failed turn left unused must not leak into the next
                        unused = len(self.fake.state.script)
                        self.fake.state.script.clear()
                    now = self.requests()
                    records = model_records(now[len(seen) :])
                    answer = str(payload.get("response") or payload.get("error") or "")
                    answers.append(answer)
                    turn = {
                        "turn": task["name"],
                        "status": status,
                        "finished": payload.get("finished"),
                        "steps": payload.get("steps"),
                        "wall_s": round(wall, 2),
                        "unused_answers": unused,
                        "answer_excerpt": answer[:120],
                        **summarise(records),
                    }
                    if records and task is tasks[0]:
                        system = (records[0]["body"].get("messages") or [{}])[0]
                        if system.get("role") == "system":
                            result["system_prompt_tokens"] = count_tokens(str(system.get("content") or ""))
                    result["turns"].append(turn)
                    seen = now
        except Exception as exc:  # a configuration that cannot run is reported, not fatal to `make bench`
            logger.exception("%s failed", self.name)
            result["failed"] = f"{type(exc).__name__}: {exc}"[:2000]
        finally:
            self.stop()
        result["totals"] = totals(result["turns"])
        return result


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"error": response.text[:500]}
    return data if isinstance(data, dict) else {"error": str(data)[:500]}
