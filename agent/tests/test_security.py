"""Issue #7's security promises, through the real service (uvicorn subprocess) and the fake Ollama.

The service reads secrets from its env files (MY_CLAW_ENV_DIR) and its process environment, as in production.
Whatever the scripted model asks the tools to do, no secret and no database content may reach the answer, the
stream, the step events, the model's next prompt or the agent's log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, start_service
from tests.fakes.ollama import FakeOllama
from tests.test_service import chat_requests, script, sse_events

API_KEY = "agent-api-key-" + "a1b2c3d4" * 4
SECRETS = {
    "AGENT_API_KEY": API_KEY,
    "WEBCHAT_TOKEN": "webchat-token-7f3e9d1c5b2a4e6f8091a2b3c4d5e6f7",
    "CRON_SECRET": "cron-secret-0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
    "WHATSAPP_APP_SECRET": "wa-app-secret-5e6f7a8b9c0d1e2f",
    "WHATSAPP_ACCESS_TOKEN": "EAAwhatsappaccesstoken0123456789",
    "WHATSAPP_VERIFY_TOKEN": "verify-token-2468013579",
    "NEXTCLOUD_BOT_SECRET": "nextcloud-bot-secret-" + "9f8e7d6c" * 6,
    "ZAI_API_KEY": "zai-key-3c4d5e6f7a8b9c0d",
}
DB_MARKER = "PRIVATE-MESSAGE-IN-THE-DATABASE-41c7"
SEEN_NOWHERE = [*SECRETS.values(), DB_MARKER]


@dataclass
class Setup:
    service: Service
    files: Path
    env_local: Path
    database: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, fake_ollama: FakeOllama) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("secure")
    env_dir = tmp / "repo"
    env_dir.mkdir()
    env_local = env_dir / ".env.local"
    database = tmp / "gateway-data" / "my-claw.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("create table Message (content text)")
        db.execute("insert into Message values (?)", (DB_MARKER,))
    (env_dir / ".env").write_text(f"WHATSAPP_ACCESS_TOKEN={SECRETS['WHATSAPP_ACCESS_TOKEN']}\n")
    from_files = ("CRON_SECRET", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "NEXTCLOUD_BOT_SECRET", "ZAI_API_KEY")
    env_local.write_text(
        "".join(f'{name}="{SECRETS[name]}"\n' for name in from_files)
        + f"DATABASE_URL=file:{database}\nZAI_BASE_URL=http://127.0.0.1:9/api/paas/v4\n"
    )
    files = tmp / "files"
    files.mkdir()
    (files / "innocent-link").symlink_to(env_local)
    (files / "innocent-db-link").symlink_to(database)
    service = start_service(
        tmp,
        MY_CLAW_ENV_DIR=str(env_dir),
        AGENT_API_KEY=API_KEY,
        WEBCHAT_TOKEN=SECRETS["WEBCHAT_TOKEN"],
        OLLAMA_BASE_URL=fake_ollama.url,
        AGENT_TOOLS="file_system,os_exec",
        LOG_LEVEL="DEBUG",
    )
    # service_env() sets ZAI_API_KEY empty in the process (so unset); the one in .env.local still counts.
    yield Setup(service, files, env_local, database)
    service.stop()


def run_both_ways(setup: Setup, fake_ollama: FakeOllama, *answers: str) -> tuple[dict, bytes, list[tuple[str, dict]]]:
    """The same scripted turn through /run and /run/stream: the JSON body, the raw SSE bytes and its events."""
    script(fake_ollama, *answers)
    with setup.service.client() as client:
        body = client.post("/run", json={"message": "do it"}).json()
        script(fake_ollama, *answers)
        streamed = client.post("/run/stream", json={"message": "do it"})
    return body, streamed.content, sse_events(streamed)


def assert_seen_nowhere(setup: Setup, fake_ollama: FakeOllama, *outputs: object) -> None:
    seen = {
        "outputs": json.dumps(outputs, ensure_ascii=False, default=lambda b: b.decode("utf-8", "replace")),
        "the model's prompts": json.dumps(chat_requests(fake_ollama), ensure_ascii=False),
        "the agent's log": setup.service.log_text(),
    }
    for where, text in seen.items():
        for secret in SEEN_NOWHERE:
            assert secret not in text, f"{secret[:12]}… found in {where}"


def observations(events: list[tuple[str, dict]]) -> str:
    return "\n".join(data["observation"] or data["error"] or "" for name, data in events if name == "step")


@pytest.mark.parametrize("target", ["env", "database"])
def test_file_system_cannot_read_the_env_file_or_the_database(
    setup: Setup, fake_ollama: FakeOllama, target: str
) -> None:
    protected = setup.env_local if target == "env" else setup.database
    link = "innocent-link" if target == "env" else "innocent-db-link"
    relative = f"../{protected.parent.name}/{protected.name}"
    body, raw, events = run_both_ways(
        setup,
        fake_ollama,
        "Thought: read it.\n<code>\n"
        f'print(file_system(operation="read", path="{relative}"))\n'
        f'print(file_system(operation="read", path="{protected}"))\n'
        f'print(file_system(operation="read", path="{link}"))\n'
        "</code>",
        f'<code>\nfinal_answer(file_system(operation="read", path="{link}"))\n</code>',
    )
    assert "outside the allowed folders" in body["response"]
    assert "outside the allowed folders" in observations(events)
    next_prompt = json.dumps(chat_requests(fake_ollama)[-1]["body"]["messages"])
    assert next_prompt.count("outside the allowed folders") == 3
    assert_seen_nowhere(setup, fake_ollama, body, raw, events)


def test_os_exec_refuses_to_name_the_env_file_or_the_database(setup: Setup, fake_ollama: FakeOllama) -> None:
    commands = [
        f"cat {setup.env_local}",
        f"cat ../{setup.env_local.parent.name}/.env.local",
        f"sqlite3 {setup.database} .dump",
        f"strings ../{setup.database.parent.name}/my-claw.db",
        "cat innocent-link",
        "cat innocent-db-link",
    ]
    code = "".join(f"print(os_exec(command={json.dumps(command)}))\n" for command in commands)
    body, raw, events = run_both_ways(
        setup, fake_ollama, f"Thought: read.\n<code>\n{code}</code>", '<code>\nfinal_answer("no")\n</code>'
    )
    assert body["response"] == "no"
    next_prompt = json.dumps(chat_requests(fake_ollama)[-1]["body"]["messages"])
    assert next_prompt.count("names a protected file") == len(commands)
    assert "refused" in observations(events)
    assert_seen_nowhere(setup, fake_ollama, body, raw, events)


def test_os_exec_environment_has_no_secrets(setup: Setup, fake_ollama: FakeOllama) -> None:
    body, raw, events = run_both_ways(
        setup,
        fake_ollama,
        'Thought: look.\n<code>\nprint(os_exec(command="env; printenv WEBCHAT_TOKEN AGENT_API_KEY; echo rc=$?"))\n'
        "</code>",
        '<code>\nfinal_answer(os_exec(command="printenv"))\n</code>',
    )
    next_prompt = json.dumps(chat_requests(fake_ollama)[-1]["body"]["messages"])
    # The variables are gone, not merely masked: printenv finds none of them.
    assert "rc=1" in next_prompt and "PATH=" in next_prompt
    assert "WEBCHAT_TOKEN=" not in next_prompt and "AGENT_API_KEY=" not in next_prompt
    assert "PATH=" in body["response"] and "WEBCHAT_TOKEN" not in body["response"]
    assert_seen_nowhere(setup, fake_ollama, body, raw, events)


def test_a_secret_printed_anyway_reaches_the_model_and_the_owner_as_redacted(
    setup: Setup, fake_ollama: FakeOllama
) -> None:
    cron, webchat = SECRETS["CRON_SECRET"], SECRETS["WEBCHAT_TOKEN"]
    (setup.files / "notes.txt").write_text(f"my webchat token is {webchat}\n")
    body, raw, events = run_both_ways(
        setup,
        fake_ollama,
        # Built from pieces, so the model's own text never holds the secret: the shell, the file and the agent's
        # Python each print it whole.
        "Thought: print.\n<code>\n"
        f'a, b = "{cron[:10]}", "{cron[10:]}"\n'
        'print(os_exec(command="echo " + a + b))\n'
        'print(file_system(operation="read", path="notes.txt"))\n'
        'print("python says " + a + b)\n'
        # A tool's output is cleaned before the code holds it, so even a transformed copy carries no secret.
        'print(file_system(operation="read", path="notes.txt")[::-1])\n'
        "</code>",
        f'<code>\nfinal_answer("answer: " + "{cron[:10]}" + "{cron[10:]}")\n</code>',
    )
    next_prompt = json.dumps(chat_requests(fake_ollama)[-1]["body"]["messages"])
    assert next_prompt.count("[redacted]") >= 3
    assert "my webchat token is [redacted]" in next_prompt and "python says [redacted]" in next_prompt
    assert "]detcader[" in next_prompt and webchat[::-1] not in next_prompt
    assert body["response"] == "answer: [redacted]"
    assert events[-1][0] == "final" and events[-1][1]["response"] == "answer: [redacted]"
    assert "[redacted]" in observations(events)
    assert_seen_nowhere(setup, fake_ollama, body, raw, events)


def test_a_secret_split_across_stream_deltas_is_redacted(setup: Setup, fake_ollama: FakeOllama) -> None:
    # The model writes the secret itself (say the owner pasted it); the fake streams it in 7-character pieces.
    secret = SECRETS["NEXTCLOUD_BOT_SECRET"]
    _, raw, events = run_both_ways(
        setup, fake_ollama, f'Thought: the owner said {secret} earlier.\n<code>\nfinal_answer("done")\n</code>'
    )
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert "Thought: the owner said [redacted] earlier." in text
    assert secret not in text
    assert events[-1][0] == "final" and events[-1][1]["response"] == "done"
    assert secret.encode() not in raw


@pytest.mark.parametrize("parameter", ["key", "api_key", "token", "access_token"])
def test_a_key_in_the_query_string_is_refused(setup: Setup, parameter: str) -> None:
    with httpx.Client(base_url=setup.service.url, timeout=30) as client:
        run = client.post(f"/run?{parameter}={API_KEY}", json={"message": "hi"})
        models = client.get(f"/models?{parameter}={API_KEY}")
        stream = client.post(f"/run/stream?other=1&{parameter}={API_KEY}", json={"message": "hi"})
    for response in (run, models, stream):
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        assert "never accepted" in response.json()["error"]
    assert API_KEY not in setup.service.log_text()
    assert '"status": 401' in setup.service.log_text()


def test_ipv6_wildcard_without_a_key_refuses_to_start_with_the_fix(tmp_path: Path) -> None:
    running = start_service(tmp_path, wait=False, AGENT_HOST="::")
    assert running.process.wait(timeout=60) == 2
    log = running.log_text()
    assert "AGENT_HOST=:: is reachable from other machines but AGENT_API_KEY is unset" in log
    assert "bind to 127.0.0.1" in log and "Traceback" not in log


def test_all_interfaces_with_a_key_answer_only_with_that_key(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    running = start_service(tmp_path, AGENT_HOST="0.0.0.0", AGENT_API_KEY=API_KEY, OLLAMA_BASE_URL=fake_ollama.url)
    try:
        with running.client(key=None) as anonymous, running.client() as owner:
            assert anonymous.get("/health").status_code == 200
            assert anonymous.post("/run", json={"message": "hi"}).status_code == 401
            assert owner.post("/run", json={"message": "hi"}).status_code == 200
    finally:
        running.stop()
