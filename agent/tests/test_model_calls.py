"""Over the service's HTTP API: Z.ai's thinking and output cap, the active tools, and logs that are JSON only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import AGENT_DIR, Service, start_service
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_compat import FakeOpenAI
from tests.test_service import chat_requests, script


def test_zai_thinks_for_reason_not_for_code_and_is_capped(service: Service, fake_zai: FakeOpenAI) -> None:
    answer = 'Thought: ok\n<code>\nfinal_answer("ok")\n</code>'
    script(fake_zai, answer, answer)
    with service.client() as client:
        assert client.post("/run", json={"message": "hi", "model": "code"}).status_code == 200
        assert client.post("/run", json={"message": "hi", "model": "reason"}).status_code == 200
    code, reason = (r["body"] for r in chat_requests(fake_zai)[-2:])
    assert code["thinking"] == {"type": "disabled"} and reason["thinking"] == {"type": "enabled"}
    assert code["max_tokens"] == 1024 and reason["max_tokens"] == 1024 + 2048, "thinking has room of its own"


def test_health_and_models_say_which_tools_are_active(service: Service) -> None:
    health = httpx.get(f"{service.url}/health").json()
    assert health["tools"] == [
        "web_search",
        "file_system",
        "os_exec",
        "analyze_image",
        "schedule_message",
        "send_file",
    ]
    assert health["tools_unavailable"] == {}
    with service.client() as client:
        models = client.get("/models").json()
    assert models["tools"] == health["tools"] and "categories" in models


def test_gui_tools_without_a_display_are_left_out_and_reported(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    running = start_service(tmp_path, OLLAMA_BASE_URL=fake_ollama.url, AGENT_TOOLS="web_search,screenshot", DISPLAY="")
    try:
        health = httpx.get(f"{running.url}/health").json()
    finally:
        running.stop()
    assert health["tools"] == ["web_search"]
    assert health["tools_unavailable"] == {"screenshot": "no display"}


def test_ollama_out_of_memory_gives_its_reason_and_what_to_do(service: Service, fake_ollama: FakeOllama) -> None:
    reason = "model requires more system memory (9.6 GiB) than is available (4.1 GiB)"
    with service.client() as client:
        assert client.post("/run", json={"message": "warm the model list"}).status_code == 200
        script(fake_ollama, fail_status=500, fail_error=reason)  # type: ignore[arg-type]
        response = client.post("/run", json={"message": "Hello"})
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "model_failed" and reason in body["error"]
    assert "smaller" in body["error"] and "ollama serve" not in body["error"]


def test_every_line_the_agent_writes_is_json_even_when_the_model_fails(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    running = start_service(tmp_path, OLLAMA_BASE_URL=fake_ollama.url, AGENT_TOOLS="web_search")
    try:
        with running.client() as client:
            assert client.post("/run", json={"message": "hello"}).status_code == 200
            script(fake_ollama, fail_status=500)
            assert client.post("/run", json={"message": "hello"}).status_code == 502
            script(fake_ollama, fail_status=429)
            assert client.post("/run", json={"message": "hello"}).status_code == 503
    finally:
        running.stop()
    lines = [line for line in running.log_text().splitlines() if line.strip()]
    assert any('"model_call_failed"' in line for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    assert "Give Feedback" not in running.log_text()


def test_litellm_is_set_up_by_whichever_module_imports_it_first() -> None:
    """The bundled price map (no fetch from the internet) and no banners, whatever the import order."""
    probe = (
        "import os, sys; os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None); import {module}; import litellm; "
        "sys.stdout.write(os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP', '') + ' ' + str(litellm.suppress_debug_info))"
    )
    for module in ("llm", "model_errors", "runner"):
        result = subprocess.run(
            [sys.executable, "-c", probe.format(module=module)],
            cwd=AGENT_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout == "True True", (module, result.stdout, result.stderr)
