"""schedule_message against a fake gateway (tests/fakes/gateway.py): the exact request of the reminders contract, the
run's reply_to (bound per run, never logged), and what the model is told when the gateway refuses or is away."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from smolagents import ChatMessage, MessageRole, Model, TokenUsage

from events import FinalEvent, StepEvent
from model_router import ModelRegistry, ResolvedModel
from runner import AgentRunner, PreparedRun, RunRequest
from settings import Settings
from tests.conftest import free_port
from tests.fakes.gateway import FakeGateway
from tools.run_context import NO_RUN, RunContext, bind_to_run, current_run, run_context
from tools.schedule_message import NO_CHAT, ScheduleMessageTool

KEY = "g" * 40
CHAT = "whatsapp:33612345678"


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[FakeGateway]:
    server = FakeGateway(KEY).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(gateway_server: FakeGateway) -> FakeGateway:
    httpx.post(f"{gateway_server.url}/_fake/reset").raise_for_status()
    return gateway_server


def schedule(tool: ScheduleMessageTool, reply_to: str | None = CHAT, **arguments: Any) -> str:
    with run_context(RunContext(reply_to=reply_to)):
        return str(tool(**arguments))


def test_sends_exactly_the_contracts_request_with_the_runs_reply_to(gateway: FakeGateway) -> None:
    tool = ScheduleMessageTool(gateway.url + "/", KEY)
    result = schedule(tool, when="2026-12-04T09:00", text="Call the dentist")
    assert result == "Scheduled (id r00001): next on 2026-12-04 09:00 (Europe/Paris). Tell the owner."
    [request] = gateway.reminders()
    assert request["path"] == "/api/reminders"
    assert request["body"] == {"reply_to": CHAT, "when": "2026-12-04T09:00", "text": "Call the dentist", "repeat": None}
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["headers"]["content-type"] == "application/json"


def test_a_repeating_reminder_sends_its_cron_expression(gateway: FakeGateway) -> None:
    tool = ScheduleMessageTool(gateway.url, KEY)
    result = schedule(tool, when=" 0 9 * * 1 ", text="Weekly review", repeat="cron")
    assert result.startswith("Scheduled (id r00001): next on 2026-12-07 09:00 (Europe/Paris).")
    assert gateway.reminders()[0]["body"] == {
        "reply_to": CHAT,
        "when": "0 9 * * 1",
        "text": "Weekly review",
        "repeat": "cron",
    }


@pytest.mark.parametrize("reply_to", [None, ""])
def test_without_a_chat_it_refuses_politely_and_sends_nothing(gateway: FakeGateway, reply_to: str | None) -> None:
    tool = ScheduleMessageTool(gateway.url, KEY)
    assert schedule(tool, reply_to, when="2026-12-04T09:00", text="x") == NO_CHAT
    assert tool(when="2026-12-04T09:00", text="x") == NO_CHAT, "outside any run: the console's case"
    assert current_run() is NO_RUN
    assert NO_CHAT.startswith("ERROR: reminders can only be set from a chat")
    assert gateway.reminders() == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"when": "2026-12-04T09:00", "text": "  "}, "ERROR: empty text"),
        ({"when": "2026-12-04T09:00", "text": "x", "repeat": "weekly"}, 'ERROR: repeat must be "cron"'),
        ({"when": "", "text": "x"}, "ERROR: empty when"),
        ({"when": "tomorrow at 9", "text": "x"}, "ERROR: when must be a local date-time"),
        ({"when": "2026-12-04T09:00+01:00", "text": "x"}, "ERROR: give when in local time"),
        ({"when": "0 9 * *", "text": "x", "repeat": "cron"}, 'ERROR: with repeat="cron", when must be 5 fields'),
    ],
)
def test_obvious_mistakes_are_refused_before_any_request(
    gateway: FakeGateway, arguments: dict[str, str], expected: str
) -> None:
    assert schedule(ScheduleMessageTool(gateway.url, KEY), **arguments).startswith(expected)
    assert gateway.reminders() == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "That time is in the past (now 2026-12-03 10:15 Europe/Paris)."),
        (409, "Too many reminders (100); cancel one with /cancel <id>."),
        (403, "This chat cannot receive reminders."),
    ],
)
def test_the_gateways_reason_is_passed_on(gateway: FakeGateway, status: int, reason: str) -> None:
    gateway.state.script.append({"status": status, "body": {"error": reason, "code": "refused"}})
    assert schedule(ScheduleMessageTool(gateway.url, KEY), when="2026-12-01T09:00", text="x") == f"ERROR: {reason}"


def test_a_wrong_key_or_a_failing_gateway_says_what_to_do(gateway: FakeGateway) -> None:
    refused = schedule(ScheduleMessageTool(gateway.url, "w" * 40), when="2026-12-04T09:00", text="x")
    assert refused.startswith("ERROR: the gateway refused the agent's key") and "AGENT_API_KEY" in refused
    gateway.state.script.append({"status": 500, "body": {"error": "internal", "code": "internal"}})
    failed = schedule(ScheduleMessageTool(gateway.url, KEY), when="2026-12-04T09:00", text="x")
    assert failed.startswith("ERROR: the gateway failed (HTTP 500)")
    gateway.state.script.append({"status": 201, "body": {"ok": True}})
    unreadable = schedule(ScheduleMessageTool(gateway.url, KEY), when="2026-12-04T09:00", text="x")
    assert unreadable.startswith("ERROR: the gateway accepted the reminder but") and "/reminders" in unreadable


def test_without_the_shared_key_nothing_is_sent(gateway: FakeGateway) -> None:
    result = schedule(ScheduleMessageTool(gateway.url, None), when="2026-12-04T09:00", text="x")
    assert result.startswith("ERROR: reminders are off because AGENT_API_KEY is not set")
    assert gateway.reminders() == []


def test_an_unreachable_gateway_is_an_error_naming_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = schedule(ScheduleMessageTool(url, KEY), when="2026-12-04T09:00", text="x")
    assert result.startswith(f"ERROR: the gateway is unreachable at {url}") and "GATEWAY_URL" in result


def test_a_slow_gateway_may_have_set_it_so_the_model_is_told_not_to_retry(gateway: FakeGateway) -> None:
    gateway.state.delay_s = 1.0
    result = schedule(ScheduleMessageTool(gateway.url, KEY, timeout_s=0.2), when="2026-12-04T09:00", text="x")
    assert result.startswith("ERROR: the gateway did not answer within 0.2 s") and "Do not try again" in result


def test_the_description_has_nothing_that_changes_and_says_where_the_time_comes_from() -> None:
    description = ScheduleMessageTool("http://127.0.0.1:3000", KEY).description
    assert '"Now:"' in description and "local time" in description
    assert (
        ScheduleMessageTool("http://127.0.0.1:1", None).to_code_prompt()
        == ScheduleMessageTool("http://127.0.0.1:3000", KEY).to_code_prompt()
    )


def test_the_runs_context_is_left_out_of_reprs() -> None:
    assert CHAT not in repr(RunContext(reply_to=CHAT))
    assert CHAT not in repr(RunRequest(message="hi", reply_to=CHAT))


class ReminderModel(Model):
    """Each run's model: first a schedule_message call (once both runs have reached it), then the final answer."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__(model_id="scripted")
        self.barrier = barrier
        self.calls = 0

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:
        self.calls += 1
        if self.calls == 1:
            self.barrier.wait(10)  # both runs are under way at once before either calls the tool
            body = 'print(schedule_message(when="2026-12-04T09:00", text="Water the plants"))'
        else:
            body = 'final_answer("set")'
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=f"Thought: go\n<code>\n{body}\n</code>",
            token_usage=TokenUsage(input_tokens=10, output_tokens=5),
        )


def test_two_concurrent_runs_each_send_their_own_reply_to_and_none_is_logged(
    gateway: FakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MY_CLAW_ENV_DIR", str(tmp_path))
    barrier = threading.Barrier(2)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ollama_warm_up=False,
        agent_tools=["schedule_message"],
        agent_api_key=KEY,
        gateway_url=gateway.url,
    )
    tool = ScheduleMessageTool(settings.gateway_url, settings.api_key)
    runner = AgentRunner(
        settings, ModelRegistry(settings), [tool], model_factory=lambda *a, **k: ReminderModel(barrier)
    )
    gateway.state.delay_s = 0.3  # both requests are in flight together
    chats = {"first": "talk:room-AAAA-1111", "second": "webchat:conv-BBBB-2222"}
    events: dict[str, list[Any]] = {}

    def one(name: str) -> None:
        prepared = PreparedRun(
            RunRequest(message="Remind me", reply_to=chats[name]), ResolvedModel("qwen3:8b", "ollama")
        )
        events[name] = list(runner.events(prepared))

    with caplog.at_level(logging.DEBUG):
        threads = [threading.Thread(target=one, args=(name,)) for name in chats]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert sorted(r["body"]["reply_to"] for r in gateway.reminders()) == sorted(chats.values())
    for name, reply_to in chats.items():
        assert isinstance(events[name][-1], FinalEvent), events[name]
        observation = next(e.observation for e in events[name] if isinstance(e, StepEvent))
        ident = re.search(r"Scheduled \(id (\w+)\)", observation or "")
        assert ident and gateway.issued[ident.group(1)] == reply_to, "each run got the answer to its own request"
    shared = runner.tools[0]
    assert not any(chat in repr(vars(shared)) + repr(vars(tool)) for chat in chats.values()), "nothing kept on the tool"
    assert any(r.getMessage() == "tool call" and r.tool == "schedule_message" for r in caplog.records)
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    for chat in chats.values():
        assert chat not in logged
        assert chat.split(":")[1] not in logged
    assert "Water the plants" not in repr([r.__dict__ for r in caplog.records if r.name.startswith("tools")])


def test_only_tools_that_read_the_run_are_wrapped(gateway: FakeGateway) -> None:
    class Plain(ScheduleMessageTool):
        uses_run_context = False

    reminders, plain = ScheduleMessageTool(gateway.url, KEY), Plain(gateway.url, KEY)
    bound = bind_to_run([reminders, plain], RunContext(reply_to=CHAT))
    assert bound[1] is plain and bound[0] is not reminders
    assert bound[0].name == reminders.name and bound[0].to_code_prompt() == reminders.to_code_prompt()
    assert bound[0](when="2026-12-04T09:00", text="x").startswith("Scheduled")
    assert current_run() is NO_RUN, "the binding lasts for the call only"
