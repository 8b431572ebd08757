"""Model-side cost of a fixed task set: today's code (the working tree) against the baseline commit, same run.

The real agent service runs against the realistic fake Ollama (tests/fakes/ollama_sim.py), which records per request
what a qwen3 model would have read, reused from its prefix cache, written (thinking included) and loaded. Each turn
gets the same scripted CodeAgent answers in both configurations; the fake's requests are attributed to the turn that
caused them. Simulated seconds are computed here for both profiles from the recorded counts:
    load_s × loaded + evaluated / prompt_tps + output (thinking included) / output_tps
(image tokens are part of the prompt: they count in `evaluated` unless cached).

Run with `make bench` (or `.venv/bin/python -m bench.bench_model_cost` from agent/). Figures go to
`bench/results/model_cost.json` and the "Model-side cost" section of `bench/REPORT.md`.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from tests.conftest import AGENT_DIR, free_port, service_env
from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_sim import PROFILES
from tests.fakes.searxng import FakeSearxng
from tests.fakes.tokens import count_tokens

logger = logging.getLogger("bench.model_cost")
logging.getLogger("httpx").setLevel(logging.WARNING)
REPO_DIR = AGENT_DIR.parent
RESULTS_DIR = REPO_DIR / "bench" / "results"
BASELINE_COMMIT = "0a1cf03"
TOOLS = "web_search,file_system,analyze_image"
TURN_TIMEOUT_S = 300.0
TEXT_FILE_BYTES = 300_000

TARGETS = {
    "first_bonjour_cpu_s": 12.0,
    "search_2_steps_cpu_s": 40.0,
    "system_prompt_tokens": 2000,
}


def code_answer(thought: str, code: str) -> str:
    return f"Thought: {thought}\n<code>\n{code}\n</code>"


def task_set(files: Path) -> list[dict[str, Any]]:
    """The turns, in order: name, /run body (history filled in later for the second "Bonjour"), scripted answers."""
    text_path = files / "notes.txt"
    photo_path = files / "photo.png"
    return [
        {"name": "bonjour (first after start)", "body": {"message": "Bonjour"}, "answers": []},
        {"name": "bonjour (with history)", "body": {"message": "Bonjour"}, "answers": [], "history_of": 0},
        {
            "name": "arithmetic (1 step)",
            "body": {"message": "Combien font 17 fois 23 ?"},
            "answers": [code_answer("17 × 23 = 391.", 'final_answer("17 fois 23 font 391.")')],
        },
        {
            "name": "web search (2 steps)",
            "body": {"message": "Quelles sont les nouveautés de Python 3.13 ?"},
            "answers": [
                code_answer("I search the web.", 'print(web_search(query="Python 3.13 nouveautés"))'),
                code_answer(
                    "The results list the release notes.",
                    'final_answer("Python 3.13 apporte un nouvel interpréteur interactif et un mode sans GIL '
                    'expérimental (docs.python.org/3/whatsnew/3.13.html).")',
                ),
            ],
        },
        {
            "name": "read a 300 KB file (2 steps)",
            "body": {"message": f"Résume le fichier {text_path}"},
            "answers": [
                code_answer(
                    "I read the file.", f'text = file_system(operation="read", path="{text_path}")\nprint(text)'
                ),
                code_answer("I have the text.", 'final_answer("Le fichier contient des notes de réunion répétées.")'),
            ],
        },
        {
            "name": "photo question (2 steps)",
            "body": {"message": f"Que montre la photo {photo_path} ?"},
            "answers": [
                code_answer(
                    "I look at the image.",
                    f'print(analyze_image(image_path="{photo_path}", question="Que montre cette photo ?"))',
                ),
                code_answer("The image was described.", 'final_answer("Un carré rouge sur fond blanc.")'),
            ],
        },
    ]


def make_files(files: Path) -> None:
    files.mkdir(parents=True, exist_ok=True)
    line = "Réunion du lundi : point sur le budget, les livraisons, le planning et les congés de l'équipe. "
    text = "".join(f"{i:05d} {line}\n" for i in range(TEXT_FILE_BYTES // (len(line.encode()) + 7) + 1))
    (files / "notes.txt").write_text(text[:TEXT_FILE_BYTES], encoding="utf-8")
    image = Image.new("RGB", (1920, 1080), "white")
    ImageDraw.Draw(image).rectangle((660, 240, 1260, 840), fill="red")
    image.save(files / "photo.png")


def request_cost(sim: dict[str, Any], profile: str) -> float:
    rates = PROFILES[profile]
    evaluated = int(sim.get("evaluated_tokens") or 0)
    output = int(sim.get("output_tokens") or 0)
    return rates.load_s * bool(sim.get("loaded")) + evaluated / rates.prompt_tps + output / rates.output_tps


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The model-side figures of a list of recorded /api/chat and /api/generate requests."""
    sims = [r["body"].get("_sim") or {} for r in records]
    total = {
        key: sum(int(s.get(key) or 0) for s in sims)
        for key in (
            "prompt_tokens",
            "cached_tokens",
            "evaluated_tokens",
            "image_tokens",
            "thinking_tokens",
            "output_tokens",
            "truncated_messages",
        )
    }
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
        python = AGENT_DIR / ".venv" / "bin" / "python"
        interpreter = str(python) if python.exists() else sys.executable
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [interpreter, "main.py"], cwd=self.agent_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"agent did not start in 90 s: {self.log_tail()}")

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

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
        turns = result["turns"]
        result["totals"] = {
            key: round(sum(t[key] for t in turns), 1) if key.endswith("_s") else sum(t[key] for t in turns)
            for key in (
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
        }
        return result


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"error": response.text[:500]}
    return data if isinstance(data, dict) else {"error": str(data)[:500]}


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


def baseline_worktree(tmp: Path) -> tuple[Path | None, str | None]:
    where = tmp / "baseline"
    try:
        subprocess.run(
            ["git", "-C", str(REPO_DIR), "worktree", "add", "--detach", str(where), BASELINE_COMMIT],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return None, f"commit {BASELINE_COMMIT} unavailable: {str(detail).strip()[:500]}"
    return where, None


def remove_worktree(where: Path) -> None:
    subprocess.run(
        ["git", "-C", str(REPO_DIR), "worktree", "remove", "--force", str(where)], capture_output=True, timeout=60
    )
    subprocess.run(["git", "-C", str(REPO_DIR), "worktree", "prune"], capture_output=True, timeout=60)


def run() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-model-cost-"))
    files = tmp / "files"
    make_files(files)
    tasks = task_set(files)
    fake = FakeOllama(profile="cpu").start()
    results: dict[str, Any] = {
        "baseline_commit": BASELINE_COMMIT,
        "fake_profile_run": "cpu",
        "profiles": {name: vars(p) for name, p in PROFILES.items()},
        "tools": TOOLS,
        "text_file_bytes": (files / "notes.txt").stat().st_size,
        "photo": "1920x1080 PNG in FILES_ALLOWED_DIRS (asked by path)",
        "tasks": [{"turn": t["name"], "message": t["body"]["message"], "answers": t["answers"]} for t in tasks],
    }
    try:
        with FakeSearxng() as searx:
            results["new"] = Run("new", AGENT_DIR, tmp, fake, searx).execute(tasks, True, OLLAMA_WARM_UP="true")
            where, reason = baseline_worktree(tmp)
            if where is None:
                results["baseline"] = {"available": False, "failed": reason, "turns": []}
            else:
                try:
                    results["baseline"] = Run("baseline", where / "agent", tmp, fake, searx).execute(tasks, False)
                finally:
                    remove_worktree(where)
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["targets"] = targets(results["new"])
    return results


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = run()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "model_cost.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    for name in ("new", "baseline"):
        config = results[name]
        logger.info("%s: %s", name, config.get("failed") or json.dumps(config.get("totals")))
        for turn in config.get("turns") or []:
            logger.info(
                "  %-30s HTTP %s cpu %6.1f s gpu %5.1f s prompt %6d eval %6d out %5d loads %d",
                turn["turn"],
                turn["status"],
                turn["cpu_s"],
                turn["gpu_s"],
                turn["prompt_tokens"],
                turn["evaluated_tokens"],
                turn["output_tokens"],
                turn["loads"],
            )
    for target in results["targets"]:
        logger.info("target %s: %s (limit %s) %s", target["target"], target["value"], target["limit"], target["met"])


if __name__ == "__main__":
    main()
