"""The real service over HTTP (uvicorn subprocess) against fake Ollama, SearXNG and Z.ai servers."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AGENT_DIR, API_KEY, Service, start_service
from tests.fakes.gateway import FakeGateway
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_compat import FakeOpenAI
from tests.fakes.searxng import FakeSearxng

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def script(server: FakeOllama | FakeOpenAI, *answers: str, **options: float) -> None:
    httpx.post(f"{server.url}/_fake/script", json={"answers": list(answers), **options}).raise_for_status()


def chat_requests(server: FakeOllama | FakeOpenAI) -> list[dict]:
    return [
        r
        for r in httpx.get(f"{server.url}/_fake/requests").json()
        if r["path"].endswith(("/api/chat", "/chat/completions"))
    ]


def run_stream(service: Service, message: str) -> httpx.Response:
    """POST /run/stream, the whole event stream read."""
    with service.client() as client:
        return client.post("/run/stream", json={"message": message})


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_run_returns_the_final_answer_with_its_metadata(service: Service, fake_ollama: FakeOllama) -> None:
    with service.client() as client:
        response = client.post("/run", json={"message": "Hello"})
    assert response.status_code == 200
    body = response.json()
    assert body["response"] == "Echo: Hello"
    assert body["model"] == "qwen3:8b"
    assert body["steps"] == 1
    assert body["duration_ms"] >= 0
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert body["attachments"] == [] and body["approvals"] == []
    sent = chat_requests(fake_ollama)[-1]["body"]
    assert sent["model"] == "qwen3:8b"
    assert sent["options"]["num_ctx"] == 8192
    assert "</code>" in sent["options"]["stop"]


def test_history_and_persona_reach_the_model_with_the_message_last(service: Service, fake_ollama: FakeOllama) -> None:
    history = [
        {"role": "user", "content": "My cat is called Biscuit."},
        {"role": "assistant", "content": "Noted: Biscuit."},
    ]
    with service.client() as client:
        response = client.post(
            "/run",
            json={
                "message": "What is my cat called?",
                "history": history,
                "system_prompt": "You are Jarvis, speak French.",
            },
        )
    assert response.status_code == 200
    messages = chat_requests(fake_ollama)[-1]["body"]["messages"]
    system, task = messages[0]["content"], messages[-1]["content"]
    assert "You are Jarvis, speak French." in system
    assert (
        task.index("My cat is called Biscuit.") < task.index("Noted: Biscuit.") < task.index("What is my cat called?")
    )
    assert task.rstrip().endswith("What is my cat called?")


def test_web_search_goes_through_searxng(service: Service, fake_ollama: FakeOllama, fake_searxng: FakeSearxng) -> None:
    script(
        fake_ollama,
        'Thought: search.\n<code>\nresults = web_search(query="Python 3.13")\nprint(results)\n</code>',
        'Thought: done.\n<code>\nfinal_answer("Python 3.13 is out")\n</code>',
    )
    with service.client() as client:
        body = client.post("/run", json={"message": "Cherche des infos sur Python 3.13"}).json()
    assert body["response"] == "Python 3.13 is out"
    assert body["steps"] == 2
    assert fake_searxng.queries == ["Python 3.13"]
    second_call = chat_requests(fake_ollama)[-1]["body"]["messages"]
    assert any("What's New In Python 3.13" in str(m["content"]) for m in second_call), (
        "the observation reaches the model"
    )


SET_REMINDER = (
    'Thought: set it.\n<code>\nprint(schedule_message(when="2026-12-04T09:00", text="Call the dentist"))\n</code>'
)


def test_a_reminder_set_in_conversation_reaches_the_gateway_with_the_turns_chat(
    service: Service, fake_ollama: FakeOllama, fake_gateway: FakeGateway
) -> None:
    chat = "whatsapp:33699887766"
    script(fake_ollama, SET_REMINDER, 'Thought: done.\n<code>\nfinal_answer("Reminder set.")\n</code>')
    with service.client() as client:
        response = client.post("/run", json={"message": "Remind me tomorrow at 9", "reply_to": chat})
    assert response.status_code == 200, response.text
    assert response.json()["response"] == "Reminder set."
    [request] = fake_gateway.reminders()
    assert request["body"] == {"reply_to": chat, "when": "2026-12-04T09:00", "text": "Call the dentist", "repeat": None}
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    second_call = chat_requests(fake_ollama)[-1]["body"]["messages"]
    assert any(
        "Scheduled (id r00001): next on 2026-12-04 09:00 (Europe/Paris)" in str(m["content"]) for m in second_call
    )
    time.sleep(0.3)
    log = service.log_text()
    assert '"tool": "schedule_message"' in log
    assert "33699887766" not in log and "Call the dentist" not in log


def test_files_sent_with_the_answer_are_listed_and_served_once_checked_again(
    service: Service, fake_ollama: FakeOllama
) -> None:
    root = service.log_path.parent  # the service's folders (tests/conftest.py service_env)
    (root / "screenshots").mkdir(exist_ok=True)
    (root / "files").mkdir(exist_ok=True)
    shot, report, outside = root / "screenshots" / "shot.png", root / "files" / "relevé 2026.pdf", root / "outside.txt"
    shot.write_bytes(PNG_1PX)
    report.write_bytes(b"%PDF-1.4 not really")
    outside.write_text("not for sending")
    script(
        fake_ollama,
        f'Thought: send.\n<code>\nprint(send_file(path="{shot}", caption=" Your screen "))\n'
        f'print(send_file(path="{report}"))\n</code>',
        'Thought: done.\n<code>\nfinal_answer("Here they are.")\n</code>',
    )
    with service.client() as client:
        response = client.post("/run", json={"message": "Send me my screen and the statement"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == "Here they are."
    png, pdf = body["attachments"]
    assert png == {
        "id": png["id"],
        "name": "shot.png",
        "mime": "image/png",
        "size": len(PNG_1PX),
        "caption": "Your screen",
    }
    assert pdf == {"id": pdf["id"], "name": "relevé 2026.pdf", "mime": "application/pdf", "size": 19, "caption": None}

    with service.client() as client, service.client(key=None) as anonymous:
        served = client.get(f"/files/{png['id']}")
        assert served.status_code == 200 and served.content == PNG_1PX
        assert served.headers["content-type"] == "image/png"
        assert served.headers["content-length"] == str(len(PNG_1PX))
        assert served.headers["content-disposition"] == "attachment; filename*=UTF-8''shot.png"
        served = client.get(f"/files/{pdf['id']}")
        assert served.content == report.read_bytes() and served.headers["content-type"] == "application/pdf"
        assert served.headers["content-disposition"] == "attachment; filename*=UTF-8''relev%C3%A9%202026.pdf"

        refused = anonymous.get(f"/files/{png['id']}")
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        unknown = client.get("/files/AAAAAAAAAAAAAAAAAAAAAAAA")
        assert unknown.status_code == 404 and unknown.json() == {"error": unknown.json()["error"], "code": "not_found"}

        # A symlink swapped in after send_file must not leak the file it points to.
        shot.unlink()
        shot.symlink_to(outside)
        swapped = client.get(f"/files/{png['id']}")
        assert swapped.status_code == 404 and swapped.json()["code"] == "not_found"
        assert b"not for sending" not in swapped.content
        report.unlink()
        assert client.get(f"/files/{pdf['id']}").status_code == 404
    time.sleep(0.3)
    log = service.log_text()
    assert '"tool": "send_file"' in log and '"event": "file_sent"' in log
    assert "relev" not in log and "Your screen" not in log and "shot.png" not in log


def test_a_turn_without_a_chat_cannot_set_a_reminder(
    service: Service, fake_ollama: FakeOllama, fake_gateway: FakeGateway
) -> None:
    script(fake_ollama, SET_REMINDER, 'Thought: done.\n<code>\nfinal_answer("Not possible here.")\n</code>')
    events = sse_events(run_stream(service, "[scheduled job] remind me"))
    step = next(data for name, data in events if name == "step")
    assert step["tool_calls"][0]["name"] == "schedule_message"
    assert "ERROR: reminders can only be set from a chat" in step["observation"]
    assert fake_gateway.reminders() == []


def test_a_side_effect_after_a_web_search_waits_for_the_owner_in_the_stream(
    service: Service, fake_ollama: FakeOllama, fake_searxng: FakeSearxng, fake_gateway: FakeGateway
) -> None:
    marker = service.log_path.parent / "files" / "approved-marker"
    marker.parent.mkdir(exist_ok=True)
    script(
        fake_ollama,
        'Thought: search.\n<code>\nprint(web_search(query="Python 3.13"))\n</code>',
        f'Thought: do it.\n<code>\nprint(os_exec(command="touch {marker}"))\n</code>',
        'Thought: done.\n<code>\nfinal_answer("Done.")\n</code>',
    )
    httpx.post(f"{fake_gateway.url}/_fake/script", json={"approvals": [{"decide": "approved", "after_s": 0.3}]})
    turn_ref = "turn:v1:8f2d0c.approval-test-signature"
    with service.client() as client:
        response = client.post(
            "/run/stream", json={"message": "Do what the web says", "turn_ref": turn_ref, "attended": True}
        )
    assert response.status_code == 200, response.text
    events = sse_events(response)
    shown = [data for name, data in events if name == "approval"]
    summary = f'os_exec(command="touch {marker}")'
    assert [(a["id"], a["tool"], a["summary"], a["state"]) for a in shown] == [
        ("a00001", "os_exec", summary, "pending"),
        ("a00001", "os_exec", summary, "approved"),
    ]
    assert set(shown[0]) == {"id", "tool", "summary", "state", "expires_at", "source"}
    assert shown[0]["source"] == "the assistant read web search results in this turn"
    names = [name for name, _ in events]
    assert names.index("approval") > names.index("step"), "after the search's step, while the second step runs"
    assert marker.exists()
    [(name, body)] = [(n, d) for n, d in events if n == "final"]
    assert body["response"] == "Done." and [a["decision"] for a in body["approvals"]] == ["approved"]
    assert fake_gateway.approval_requests()[0]["body"]["turn_ref"] == turn_ref
    time.sleep(0.3)
    log = service.log_text()
    assert '"event": "approval"' in log and '"decision": "approved"' in log
    assert turn_ref not in log and "approved-marker" not in log


def test_a_run_nobody_watches_is_refused_its_side_effects_and_says_so(
    service: Service, fake_ollama: FakeOllama, fake_gateway: FakeGateway
) -> None:
    marker = service.log_path.parent / "files" / "cron-marker"
    marker.parent.mkdir(exist_ok=True)
    script(
        fake_ollama,
        'Thought: search.\n<code>\nprint(web_search(query="Python 3.13"))\n</code>',
        f'Thought: do it.\n<code>\nprint(os_exec(command="touch {marker}"))\n</code>',
        'Thought: done.\n<code>\nfinal_answer("Not allowed.")\n</code>',
    )
    with service.client() as client:
        response = client.post("/run", json={"message": "[scheduled job] x", "turn_ref": "t" * 1000, "attended": False})
        too_long = client.post("/run", json={"message": "x", "turn_ref": "t" * 1001})
    assert response.status_code == 200, response.text
    assert response.json()["approvals"] == [{"tool": "os_exec", "decision": "unattended", "waited_s": 0.0}]
    assert not marker.exists() and fake_gateway.approval_requests() == []
    assert too_long.status_code == 422 and "turn_ref" in too_long.json()["error"]


def test_stream_yields_deltas_and_steps_then_final(service: Service, fake_ollama: FakeOllama) -> None:
    script(
        fake_ollama,
        "Thought: compute.\n<code>\nprint(6 * 7)\n</code>",
        'Thought: answer.\n<code>\nfinal_answer("42")\n</code>',
    )
    response = run_stream(service, "6 times 7?")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[-1] == "final"
    assert names.count("step") == 2
    assert names.index("delta") < names.index("step")
    first_step = next(data for name, data in events if name == "step")
    assert first_step["tool_calls"][0]["name"] == "python_interpreter"
    assert "42" in first_step["observation"]
    deltas = "".join(data["text"] for name, data in events if name == "delta")
    assert "print(6 * 7)" in deltas
    assert events[-1][1]["response"] == "42"
    assert events[-1][1]["attachments"] == []


def test_tool_failure_is_reported_in_its_step(service: Service, fake_ollama: FakeOllama) -> None:
    script(
        fake_ollama,
        'Thought: read.\n<code>\nprint(file_system(operation="read", path="../../etc/passwd"))\n</code>',
        '<code>\nfinal_answer("cannot")\n</code>',
    )
    events = sse_events(run_stream(service, "read passwd"))
    step = next(data for name, data in events if name == "step")
    assert step["tool_calls"][0]["name"] == "file_system"
    assert "ERROR" in step["observation"]
    assert "root:" not in json.dumps(events)


def test_category_and_installed_id_choose_the_model(service: Service, fake_ollama: FakeOllama) -> None:
    with service.client() as client:
        fast = client.post("/run", json={"message": "hi", "model": "fast"}).json()
        explicit = client.post("/run", json={"message": "hi", "model": "qwen3:4b"}).json()
    assert fast["model"] == "qwen3:4b" and explicit["model"] == "qwen3:4b"
    assert [r["body"]["model"] for r in chat_requests(fake_ollama)] == ["qwen3:4b", "qwen3:4b"]


def test_model_not_installed_is_503_with_the_pull_command(service: Service) -> None:
    with service.client() as client:
        response = client.post("/run", json={"message": "hi", "model": "mistral:7b"})
    assert response.status_code == 503
    assert response.json()["code"] == "model_missing"
    assert "ollama pull mistral:7b" in response.json()["error"]


def test_models_lists_categories_and_installed(service: Service) -> None:
    with service.client() as client:
        body = client.get("/models").json()
    assert body["installed"] == ["qwen3:8b", "qwen3:4b", "qwen3-vl:2b"]
    assert body["categories"]["smart"] == {"model": "qwen3:8b", "available": True, "provider": "ollama"}
    assert body["categories"]["vision"]["model"] == "qwen3-vl:2b"
    assert body["categories"]["reason"] == {"model": "glm-4.7", "available": True, "provider": "zai"}


def test_zai_route_cleans_glm_stray_code_tags(service: Service, fake_zai: FakeOpenAI) -> None:
    # GLM-4.7 closes its block with `</code` and no `>`; the stop sequence `</code>` never matches.
    script(fake_zai, 'Thought: reply.\n<code>\nfinal_answer("from glm")\n</code')
    with service.client() as client:
        response = client.post("/run", json={"message": "hi", "model": "code"})
    assert response.status_code == 200, response.text
    assert response.json()["response"] == "from glm"
    assert response.json()["model"] == "glm-4.7-flash"
    request = chat_requests(fake_zai)[-1]
    assert request["path"] == "/api/paas/v4/chat/completions"
    assert request["headers"]["authorization"] == "Bearer zai-test-key-0123456789"
    assert request["body"]["model"] == "glm-4.7-flash"


def test_images_are_saved_and_their_paths_given_to_the_agent(service: Service, fake_ollama: FakeOllama) -> None:
    encoded = base64.b64encode(PNG_1PX).decode()
    with service.client() as client:
        response = client.post("/run", json={"message": "What is this?", "images": [encoded]})
    assert response.status_code == 200
    task = chat_requests(fake_ollama)[-1]["body"]["messages"][-1]["content"]
    saved = [line[2:].strip() for line in task.splitlines() if line.startswith("- ") and line.rstrip().endswith(".png")]
    assert len(saved) == 1 and Path(saved[0]).read_bytes() == PNG_1PX


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 32_001}, "message"),
        ({"message": "hi", "history": [{"role": "system", "content": "x"}]}, "history.0.role"),
        ({"message": "hi", "model": "bad model!"}, "model"),
        ({"message": "hi", "images": ["not base64!!"]}, "images[0]"),
        ({"message": 42}, "message"),
    ],
)
def test_invalid_body_is_422_naming_the_field(service: Service, body: dict, field: str) -> None:
    with service.client() as client:
        response = client.post("/run", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["error"]


def test_malformed_json_is_422_not_500(service: Service) -> None:
    with service.client() as client:
        response = client.post("/run", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert set(response.json()) == {"error", "code"}


def test_auth_is_required_everywhere_but_health(service: Service) -> None:
    with service.client(key=None) as anonymous, service.client(key="w" * 40) as wrong:
        assert anonymous.get("/health").status_code == 200
        for client in (anonymous, wrong):
            for method, path in (
                ("POST", "/run"),
                ("POST", "/run/stream"),
                ("GET", "/models"),
                ("GET", "/openapi.json"),
                ("GET", "/files/anything"),
            ):
                response = client.request(method, path, json={"message": "hi"})
                assert response.status_code == 401, (method, path)
                assert response.json()["code"] == "unauthorized"


def test_slow_model_times_out_with_504(service: Service, fake_ollama: FakeOllama) -> None:
    script(fake_ollama, delay_s=8)
    with service.client() as client:
        started = time.monotonic()
        response = client.post("/run", json={"message": "slow"})
    assert response.status_code == 504
    assert response.json()["code"] == "timeout"
    assert time.monotonic() - started < 8


def test_client_leaving_the_stream_stops_the_run(service: Service, fake_ollama: FakeOllama) -> None:
    # Every answer prints and never finishes: only the disconnect can stop the agent before max_steps.
    looping = 'Thought: more.\n<code>\nprint("again")\n</code>'
    script(fake_ollama, *[looping] * 6, delta_delay_s=0.02)
    with service.client() as client, client.stream("POST", "/run/stream", json={"message": "loop"}) as response:
        for line in response.iter_lines():
            if line == "event: step":
                break
    time.sleep(1.5)
    calls_after_leaving = len(chat_requests(fake_ollama))
    time.sleep(1.5)
    assert calls_after_leaving <= 2
    assert len(chat_requests(fake_ollama)) == calls_after_leaving, "no new model call once the client left"
    assert '"event": "client_left"' in service.log_text() and '"path": "/run/stream"' in service.log_text()


def test_client_leaving_a_run_stops_it_and_frees_its_slot(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    # One slot: the next /run is served only once the abandoned run has given it back.
    running = start_service(
        tmp_path, OLLAMA_BASE_URL=fake_ollama.url, AGENT_MAX_CONCURRENCY="1", AGENT_MAX_STEPS="20", AGENT_TIMEOUT_S="60"
    )
    try:
        looping = 'Thought: more.\n<code>\nprint("again")\n</code>'
        script(fake_ollama, *[looping] * 20, delta_delay_s=0.05)
        body = json.dumps({"message": "loop"}).encode()
        host, port = running.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /run HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            deadline = time.monotonic() + 20
            while not chat_requests(fake_ollama) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert chat_requests(fake_ollama), "the run reached the model"
        time.sleep(1.5)
        calls_after_leaving = len(chat_requests(fake_ollama))
        time.sleep(1.5)
        assert calls_after_leaving <= 2
        assert len(chat_requests(fake_ollama)) == calls_after_leaving, "no new model call once the client left"

        httpx.post(f"{fake_ollama.url}/_fake/reset").raise_for_status()
        with running.client(timeout=10) as client:
            response = client.post("/run", json={"message": "after"})
        assert response.status_code == 200, response.text
        assert response.json()["response"] == "Echo: after"
        left = [json.loads(line) for line in running.log_text().splitlines() if '"event": "client_left"' in line]
        assert [(entry["path"], entry["model"]) for entry in left] == [("/run", "qwen3:8b")]
    finally:
        running.stop()


def test_run_pairs_escaped_surrogates_in_the_answer_instead_of_failing(
    service: Service, fake_ollama: FakeOllama
) -> None:
    # Found by schemathesis: {"message": "\U00010000"} was echoed as "\\ud800\\udc00" in code and answered 500.
    script(fake_ollama, 'Thought: t\n<code>\nfinal_answer("\\ud83d\\ude00 and \\ud800 alone")\n</code>')
    with service.client() as client:
        response = client.post("/run", json={"message": "Hello"})
    assert response.status_code == 200
    assert response.json()["response"] == "\U0001f600 and \ufffd alone"


def test_runs_beyond_the_concurrency_limit_wait_their_turn(service: Service, fake_ollama: FakeOllama) -> None:
    script(fake_ollama, delay_s=1.0)
    results: list[int] = []

    def one() -> None:
        with service.client() as client:
            results.append(client.post("/run", json={"message": "x"}).status_code)

    threads = [threading.Thread(target=one) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert results == [200, 200, 200]
    # Two run side by side (~1 s), the third waits for a slot (~2 s in all); three at once would take ~1 s.
    assert elapsed >= 1.9


def test_logs_carry_metadata_but_never_message_text(service: Service, fake_ollama: FakeOllama) -> None:
    marker = "SECRET-MARKER-7f3a9"
    with service.client() as client:
        client.post("/run", json={"message": f"remember {marker}", "history": [{"role": "user", "content": marker}]})
        client.post("/run", json={"message": f"{marker} again", "model": "not-installed:1b"})
        client.post("/run", json={"message": f"{marker}", "history": [{"role": "bad", "content": marker}]})
    time.sleep(0.3)
    log = service.log_text()
    assert '"event": "run_done"' in log and '"model": "qwen3:8b"' in log
    assert marker not in log
    assert API_KEY not in log


def test_ollama_down_is_503_with_the_url_and_hint(tmp_path: Path) -> None:
    running = start_service(tmp_path, OLLAMA_BASE_URL="http://127.0.0.1:9")
    try:
        with running.client() as client:
            health = client.get("/health")
            response = client.post("/run", json={"message": "Hello"})
            models = client.get("/models").json()
        assert health.status_code == 200
        assert {k: health.json()[k] for k in ("status", "ollama", "models")} == {
            "status": "ok",
            "ollama": "down",
            "models": 0,
        }
        assert response.status_code == 503
        assert response.json()["code"] == "model_unreachable"
        assert "http://127.0.0.1:9" in response.json()["error"] and "ollama serve" in response.json()["error"]
        assert models["ollama"] == "down" and models["categories"]["smart"]["available"] is False
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"AGENT_HOST": "0.0.0.0"}, "AGENT_API_KEY is unset"),
        ({"AGENT_API_KEY": "short-key"}, "shorter than 32"),
        ({"AGENT_TOOLS": "web_search,teleport"}, "teleport"),
        ({"AGENT_TIMEOUT_S": "100", "AGENT_EXECUTOR_TIMEOUT_S": "120"}, "Timeouts must nest"),
        ({"OLLAMA_KEEP_ALIVE": "soon"}, "duration"),
    ],
)
def test_unsafe_or_invalid_configuration_refuses_to_start(
    tmp_path: Path, overrides: dict[str, str], reason: str
) -> None:
    running = start_service(tmp_path, wait=False, **overrides)
    code = running.process.wait(timeout=60)
    assert code == 2
    assert reason in running.log_text()
    assert "Traceback" not in running.log_text()


def test_oversized_image_is_413_and_nothing_is_saved(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    running = start_service(tmp_path, OLLAMA_BASE_URL=fake_ollama.url, AGENT_MAX_IMAGE_BYTES="1000")
    try:
        big_png = base64.b64encode(PNG_1PX + b"\0" * 2000).decode()
        with running.client() as client:
            response = client.post(
                "/run", json={"message": "look", "images": [base64.b64encode(PNG_1PX).decode(), big_png]}
            )
            too_big_body = client.post(
                "/run",
                content=b"x" * (5 * 1000 * 4 // 3 + 3 * 1024 * 1024),
                headers={"Content-Type": "application/json"},
            )
        assert response.status_code == 413
        assert response.json()["code"] == "image_too_large" and "images[1]" in response.json()["error"]
        assert not (tmp_path / "media").exists() or not any((tmp_path / "media").iterdir())
        assert chat_requests(fake_ollama) == []
        assert too_big_body.status_code == 413 and set(too_big_body.json()) == {"error", "code"}

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
            for _ in range(40):
                yield b" " * 100_000

        with running.client() as client:
            streamed = client.post("/run", content=chunked(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and set(streamed.json()) == {"error", "code"}
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [(500, "model_failed", 502), (404, "model_missing", 503), (429, "model_busy", 503)],
)
def test_model_failing_in_the_middle_of_a_run_is_named(
    service: Service, fake_ollama: FakeOllama, status: int, code: str, http_status: int
) -> None:
    """The model list is cached and says the model is there; the call itself then fails: the error still says why."""
    with service.client() as client:
        assert client.post("/run", json={"message": "warm the model list"}).status_code == 200
        script(fake_ollama, fail_status=status)
        response = client.post("/run", json={"message": "Hello"})
    assert response.status_code == http_status, response.text
    assert response.json()["code"] == code


def test_ollama_killed_after_the_model_list_was_read_is_unreachable(tmp_path: Path) -> None:
    # A separate process, so that killing it closes the connections LiteLLM keeps alive, as a real crash does.
    ollama = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ollama", "--port", "0"], cwd=AGENT_DIR, stdout=subprocess.PIPE, text=True
    )
    assert ollama.stdout is not None
    url = f"http://127.0.0.1:{ollama.stdout.readline().split()[1]}"
    running = start_service(tmp_path, OLLAMA_BASE_URL=url)
    try:
        with running.client() as client:
            assert client.post("/run", json={"message": "Hello"}).status_code == 200
            ollama.kill()
            ollama.wait()
            response = client.post("/run", json={"message": "Hello again"})
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "model_unreachable"
        assert url in response.json()["error"] and "ollama serve" in response.json()["error"]
    finally:
        running.stop()
        ollama.kill()
