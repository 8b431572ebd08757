"""Model-side cost of a fixed task set: today's code (the working tree) against the baseline commit, same run.

The real agent service runs against the realistic fake Ollama (tests/fakes/ollama_sim.py), which records per request
what a qwen3 model would have read, reused from its prefix cache, written (thinking included) and loaded. Each turn
gets the same scripted CodeAgent answers in both configurations; the fake's requests are attributed to the turn that
caused them. Simulated seconds are computed here for both profiles from the recorded counts:
    load_s × loaded + evaluated / prompt_tps + output (thinking included) / output_tps
(image tokens are part of the prompt: they count in `evaluated` unless cached).

Run with `make bench` (or `.venv/bin/python -m bench.bench_model_cost` from agent/). Figures go to
`bench/results/model_cost.json` and the "Model-side cost" section of `bench/REPORT.md`.

The task set lives in bench/model_cost_tasks.py, one configuration's run in bench/model_cost_run.py, the sums and
targets in bench/model_cost_figures.py; this module runs both configurations and writes the results.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.model_cost_figures import targets
from bench.model_cost_run import TOOLS, Run
from bench.model_cost_tasks import make_files, task_set
from tests.conftest import AGENT_DIR
from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_sim import PROFILES
from tests.fakes.searxng import FakeSearxng

logger = logging.getLogger("bench.model_cost")
logging.getLogger("httpx").setLevel(logging.WARNING)
REPO_DIR = AGENT_DIR.parent
RESULTS_DIR = REPO_DIR / "bench" / "results"
BASELINE_COMMIT = "0a1cf03"


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
