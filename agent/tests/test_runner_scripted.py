"""AgentRunner in-process with a scripted smolagents Model, as smolagents' own tests do: no HTTP, no subprocess.

The real CodeAgent loop runs; only the model is replaced (tests/test_runner.py drives the real AgentModel against
the fake Ollama). Covered here: the events of a run, cancellation, redaction of secrets, and what the owner is told
when the model call fails.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import litellm
import pytest
from smolagents import ActionStep, ChatMessage, MessageRole, Model, TokenUsage, Tool
from smolagents.monitoring import Timing

from claw_agent import SUMMARY_MAX_TOKENS, NoModel, RunClock, build_agent
from context import ContextBudget, ContextOverflowError, message_text
from events import AgentEvent, DeltaEvent, ErrorEvent, FinalEvent, StepEvent, ThinkingEvent
from model_router import ModelRegistry, ResolvedModel
from runner import AgentRunner, PreparedRun, RunRequest
from settings import Settings

SECRET = "sk-live-0123456789abcdef"
OLLAMA = ResolvedModel("qwen3:8b", "ollama")
ZAI = ResolvedModel("glm-4.7", "zai")

# A reply: the model's text, an exception it raises, or a function of the model (to act mid-call) giving either.
Reply = str | BaseException | Callable[["ScriptedModel"], "str | BaseException"]


class ScriptedModel(Model):
    """Replies from a script, and reports its text and thinking in pieces, as the real model does while streaming."""

    def __init__(self, script: Script, **hooks: Any) -> None:
        super().__init__(model_id="scripted")
        self.script = script
        self.on_delta: Callable[[str], None] = hooks["on_delta"]
        self.on_thinking: Callable[[str], None] = hooks["on_thinking"]
        self.cancel: threading.Event = hooks["cancel"]
        self.budget: ContextBudget = hooks["budget"]

    def generate(self, messages: list[ChatMessage | dict[str, Any]], **kwargs: Any) -> ChatMessage:
        self.script.prompts.append(
            "\n".join(message_text(m if isinstance(m, ChatMessage) else ChatMessage.from_dict(m)) for m in messages)
        )
        self.script.kwargs.append(kwargs)
        replies = self.script.replies
        reply = replies[min(len(self.script.prompts), len(replies)) - 1]
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(self)
        if isinstance(reply, BaseException):
            raise reply
        if self.script.thinking:
            self.on_thinking(self.script.thinking)
        for start in range(0, len(reply), 7):
            self.on_delta(reply[start : start + 7])
        return ChatMessage(
            role=MessageRole.ASSISTANT, content=reply, token_usage=TokenUsage(input_tokens=100, output_tokens=10)
        )


@dataclass
class Script:
    """The model factory the runner is given: every model it builds answers from `replies`, the last one repeating."""

    replies: list[Reply]
    thinking: str = ""
    prompts: list[str] = field(default_factory=list)
    kwargs: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, resolved: ResolvedModel, settings: Settings, **hooks: Any) -> Model:
        return ScriptedModel(self, **hooks)


class NoteTool(Tool):
    name = "read_note"
    description = "Reads the owner's note."
    inputs = {"title": {"type": "string", "description": "Title of the note."}}
    output_type = "string"

    def forward(self, title: str) -> str:
        return f"Note {title}: the key is {SECRET}, keep it safe."


def code(body: str, thought: str = "go") -> str:
    return f"Thought: {thought}\n<code>\n{body}\n</code>"


@pytest.fixture
def make_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., AgentRunner]:
    monkeypatch.setenv("MY_CLAW_ENV_DIR", str(tmp_path))  # no env files: the one secret is the one set here
    monkeypatch.setenv("SCRIPTED_TEST_TOKEN", SECRET)

    def make(script: Script, **overrides: Any) -> AgentRunner:
        settings = Settings(_env_file=None, ollama_warm_up=False, **overrides)  # type: ignore[call-arg]
        return AgentRunner(settings, ModelRegistry(settings), [NoteTool()], model_factory=script)

    return make


def run(runner: AgentRunner, resolved: ResolvedModel = OLLAMA, cancel: threading.Event | None = None) -> list[Any]:
    return list(runner.events(PreparedRun(RunRequest(message="Go"), resolved), cancel))


def kinds(events: list[AgentEvent]) -> list[str]:
    """Event names with runs of deltas and thoughts collapsed into one."""
    names: list[str] = []
    for event in events:
        if not (names and event.name in ("delta", "thinking") and names[-1] == event.name):
            names.append(event.name)
    return names


def test_a_two_step_run_streams_deltas_then_each_step_then_the_final_answer(
    make_runner: Callable[..., AgentRunner],
) -> None:
    first, second = code('print(read_note(title="garden"))'), code('final_answer("Arrosé.")', "done")
    events = run(make_runner(Script([first, second])))
    assert kinds(events) == ["delta", "step", "delta", "step", "final"]
    deltas = "".join(e.text for e in events if isinstance(e, DeltaEvent))
    assert deltas == first + second, "every piece of the model's text reaches the owner, in order"
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [s.step for s in steps] == [1, 2]
    assert steps[0].tool_calls == [{"name": "read_note", "arguments": "title='garden'"}]
    assert steps[0].observation is not None and "Note garden" in steps[0].observation and steps[0].error is None
    assert steps[1].tool_calls == [{"name": "final_answer", "arguments": "'Arrosé.'"}]
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert (final.response, final.model, final.steps, final.finished) == ("Arrosé.", "qwen3:8b", 2, True)
    assert final.usage == {"input_tokens": 200, "output_tokens": 20}


def test_thinking_comes_as_its_own_events_before_the_text_and_never_in_the_answer(
    make_runner: Callable[..., AgentRunner],
) -> None:
    script = Script([code('final_answer("Oui.")')], thinking="The owner asks yes or no; say yes.")
    events = run(make_runner(script))
    assert isinstance(events[0], ThinkingEvent) and kinds(events)[-2:] == ["step", "final"]
    # Each stream holds back a tail that could start a secret; both tails come out when the step ends.
    assert "".join(e.text for e in events if isinstance(e, ThinkingEvent)) == script.thinking
    assert events[-1].response == "Oui." and "owner asks" not in events[-1].response


def test_out_of_steps_the_final_event_says_unfinished_with_the_models_summary(
    make_runner: Callable[..., AgentRunner],
) -> None:
    script = Script([code('print("page 1")'), "J'ai lu la page 1 seulement."])
    events = run(make_runner(script, agent_max_steps=1))
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert (final.finished, final.response, final.steps) == (False, "J'ai lu la page 1 seulement.", 1)
    assert len(script.prompts) == 2 and "ran out after 1 step." in script.prompts[1]


@pytest.mark.parametrize(
    ("step_s", "timeout_s", "answer"),
    [
        # After a 3.5 s step, 6 s are left: not enough for another such step and the summary, enough for the summary.
        (3.5, 9.5, "J'ai lu une page ; il en reste."),
        # After a 1.2 s step, 1.8 s are left: too little even for the summary; the answer still says the task stopped.
        (1.2, 3.0, "I stopped after 1 step without finishing the task."),
    ],
)
def test_a_run_whose_time_would_run_out_ends_honestly_before_the_time_out(
    make_runner: Callable[..., AgentRunner],
    caplog: pytest.LogCaptureFixture,
    step_s: float,
    timeout_s: float,
    answer: str,
) -> None:
    def slow_step(model: ScriptedModel) -> str:
        time.sleep(step_s)  # a CPU writing a long step
        return code('print("page")')

    # A second step would read the summary's text and fail: only the summary may come after the first step.
    script = Script([slow_step, "J'ai lu une page ; il en reste."])
    runner = make_runner(script, agent_max_steps=6)

    async def go() -> list[AgentEvent]:
        prepared = PreparedRun(RunRequest(message="Lis tout"), OLLAMA)
        return [event async for event in runner.aevents(prepared, timeout_s)]

    with caplog.at_level(logging.INFO):
        events = asyncio.run(go())
    final = events[-1]
    assert isinstance(final, FinalEvent), events
    assert (final.finished, final.steps, final.response) == (False, 1, answer)
    assert len(script.prompts) == (2 if answer.startswith("J'ai") else 1)
    assert "run_ending_in_time" in caplog.text


def test_the_consoles_events_end_honestly_before_their_deadline_too(make_runner: Callable[..., AgentRunner]) -> None:
    def slow_step(model: ScriptedModel) -> str:
        time.sleep(3.5)
        return code('print("page")')

    script = Script([slow_step, "Une page lue."])
    prepared = PreparedRun(RunRequest(message="Lis tout"), OLLAMA)
    events = list(make_runner(script, agent_max_steps=6).events(prepared, deadline=time.monotonic() + 9.5))
    final = events[-1]
    assert isinstance(final, FinalEvent) and (final.finished, final.steps, final.response) == (
        False,
        1,
        "Une page lue.",
    )


def test_time_spent_waiting_for_the_owner_does_not_make_a_step_look_long() -> None:
    waited = [300.0]  # step 1 below took 310 s, 300 of them waiting for an approval
    # 100 s are left: the deadline moved later by the 300 s waited.
    clock = RunClock(deadline=time.monotonic() + 100 - 300, paused_s=lambda: waited[0])
    agent = build_agent(Settings(_env_file=None), [], NoModel(), None, [], clock)  # type: ignore[call-arg]

    def finish(number: int, seconds: float) -> None:
        now = time.time()
        agent.step_number = number
        agent.end_in_time(ActionStep(step_number=number, timing=Timing(start_time=now - seconds, end_time=now)))

    finish(1, 310.0)
    assert agent.step_number == 1, "10 s of work: another step and the summary fit in the 100 s left"
    finish(2, 60.0)
    assert agent.step_number == agent.max_steps, "60 s steps: another one and the summary would not fit"


def test_a_summary_still_being_written_when_the_time_runs_out_is_cut_not_lost(
    make_runner: Callable[..., AgentRunner],
) -> None:
    def slow_step(model: ScriptedModel) -> str:
        time.sleep(0.4)
        return code('print("page")')

    def slow_summary(model: ScriptedModel) -> str | BaseException:
        # The real model stops reading at stop_at (llm.AgentModel, tested in test_llm); this one is told it.
        return "Résumé partiel." if model.script.kwargs[-1].get("stop_at") else RuntimeError("no stop_at")

    script = Script([slow_step, slow_summary])
    runner = make_runner(script, agent_max_steps=1)

    async def go() -> list[AgentEvent]:
        return [event async for event in runner.aevents(PreparedRun(RunRequest(message="Lis"), OLLAMA), 30.0)]

    final = asyncio.run(go())[-1]
    assert isinstance(final, FinalEvent) and (final.finished, final.response) == (False, "Résumé partiel.")
    stop_at = script.kwargs[-1]["stop_at"]
    assert 20 < stop_at - time.monotonic() < 30, "the summary must end before the run's deadline"
    assert script.kwargs[-1]["max_tokens"] == SUMMARY_MAX_TOKENS


def test_a_run_cancelled_mid_step_stops_after_that_step_without_more_model_calls_or_events(
    make_runner: Callable[..., AgentRunner], caplog: pytest.LogCaptureFixture
) -> None:
    cancel = threading.Event()

    def consumer_leaves(model: ScriptedModel) -> str:
        model.on_delta("Thought: let me")
        cancel.set()  # as the console's timer or a departed client does, while the model is still writing
        return code('print("step one")')

    script = Script([consumer_leaves, code('final_answer("too late")')])
    with caplog.at_level(logging.INFO):
        events = run(make_runner(script), cancel=cancel)
    # Text written before the stop may or may not reach the consumer, depending on who ran first; nothing after it.
    assert all(isinstance(e, DeltaEvent) for e in events), events
    assert len(script.prompts) == 1, "the agent asked the model nothing more"
    assert "agent_run_failed" not in caplog.text, "a stop is not reported as the agent failing"


def test_a_run_past_its_time_reports_a_timeout_and_frees_its_slot_when_the_agent_has_stopped(
    make_runner: Callable[..., AgentRunner],
) -> None:
    woken: list[bool] = []

    def slow(model: ScriptedModel) -> str:
        woken.append(model.cancel.wait(30))  # a model that writes until told to stop
        return code('print("late")')

    script = Script([slow, code('final_answer("done")')])
    runner = make_runner(script, agent_max_concurrency=1)

    async def both() -> tuple[list[AgentEvent], list[AgentEvent]]:
        prepared = PreparedRun(RunRequest(message="Go"), OLLAMA)
        late = [event async for event in runner.aevents(prepared, timeout_s=0.5)]
        script.replies = [code('final_answer("next")')]
        # One slot: this run can only start once the first run's agent thread has really ended.
        return late, [event async for event in runner.aevents(prepared, timeout_s=30)]

    late, next_run = asyncio.run(both())
    assert [(e.code, e.status) for e in late if isinstance(e, ErrorEvent)] == [("timeout", 504)]
    assert late[-1].error.startswith("The model had not started answering after 0.5 s"), "the cause, not 'timed out'"
    assert not [e for e in late if isinstance(e, FinalEvent | StepEvent)]
    assert woken == [True], "the model was told to stop, not left to run out its own time"
    assert isinstance(next_run[-1], FinalEvent) and next_run[-1].response == "next"
    assert len(script.prompts) == 2, "one call for each run: the stopped run asked the model nothing more"


def test_a_time_out_says_what_the_run_was_doing(make_runner: Callable[..., AgentRunner]) -> None:
    def hangs(model: ScriptedModel) -> str:
        model.on_delta("Thought: I read the page")  # the model has started writing, then stalls
        model.cancel.wait(30)
        return code('print("late")')

    script = Script([hangs, code('final_answer("next")')])
    runner = make_runner(script, agent_max_concurrency=1)
    prepared = PreparedRun(RunRequest(message="Go"), OLLAMA)

    async def both() -> tuple[list[AgentEvent], list[AgentEvent]]:
        first = asyncio.create_task(_collect(runner.aevents(prepared, timeout_s=1.0)))
        await asyncio.sleep(0.2)
        queued = await _collect(runner.aevents(prepared, timeout_s=0.3))  # the one slot is taken
        running = await first
        # The slot comes back once the stopped agent's thread has ended: wait for that before the loop closes.
        assert isinstance((await _collect(runner.aevents(prepared, timeout_s=30)))[-1], FinalEvent)
        return running, queued

    running, queued = asyncio.run(both())
    assert running[-1].error.startswith("The agent did not finish within 1 s: one step took longer")
    assert queued[-1].error.startswith("The agent was busy with other requests for all of 0.3 s")
    assert [e.code for e in (running[-1], queued[-1])] == ["timeout", "timeout"]


async def _collect(events: Any) -> list[AgentEvent]:
    return [event async for event in events]


def test_secrets_are_redacted_from_tool_output_printed_values_errors_deltas_and_the_answer(
    make_runner: Callable[..., AgentRunner],
) -> None:
    half = len(SECRET) // 2
    # Reversed, the tool's output would slip past the step's redaction: the tool's own output must be clean already.
    printed = (
        f'key = "{SECRET[:half]}" + "{SECRET[half:]}"\nprint(read_note(title="a"), key, read_note(title="b")[::-1])'
    )
    raised = f'raise ValueError("{SECRET[:half]}" + "{SECRET[half:]}")'
    answer = f'final_answer("La clé est {SECRET}.")'
    script = Script([code(printed), code(raised), code(answer, f"it is {SECRET}")])
    events = run(make_runner(script))
    assert SECRET not in repr(events) and SECRET[::-1] not in repr(events)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[0].observation is not None and steps[0].observation.count("[redacted]") == 2
    assert "]detcader[" in steps[0].observation
    assert steps[1].error is not None and "[redacted]" in steps[1].error
    assert "it is [redacted]" in "".join(e.text for e in events if isinstance(e, DeltaEvent))
    assert events[-1].response == "La clé est [redacted]."
    assert all(SECRET not in p and SECRET[::-1] not in p for p in script.prompts), "the model never reads it back"
    assert "[redacted]" in script.prompts[1] and "[redacted]" in script.prompts[2]


def connection_refused() -> BaseException:
    try:
        raise httpx.ConnectError("[Errno 111] Connection refused")
    except httpx.ConnectError as cause:
        try:
            raise litellm.exceptions.APIConnectionError(
                message="Ollama_chatException - [Errno 111] Connection refused",
                llm_provider="ollama_chat",
                model="qwen3:8b",
            ) from cause
        except litellm.exceptions.APIConnectionError as exc:
            return exc


def ollama_error(kind: type[Exception], reason: str) -> BaseException:
    return kind(message=f'Ollama_chatException - {{"error": "{reason}"}}', llm_provider="ollama_chat", model="qwen3:8b")


OUT_OF_MEMORY = "model requires more system memory (9.6 GiB) than is available (4.1 GiB)"


@pytest.mark.parametrize(
    ("resolved", "raised", "code", "status", "says"),
    [
        (OLLAMA, lambda: ollama_error(litellm.exceptions.InternalServerError, OUT_OF_MEMORY), "model_failed", 502, OUT_OF_MEMORY),
        (OLLAMA, connection_refused, "model_unreachable", 503, "http://localhost:11434"),
        (OLLAMA, lambda: ollama_error(litellm.exceptions.NotFoundError, "model 'qwen3:8b' not found"), "model_missing", 503, "ollama pull qwen3:8b"),
        (OLLAMA, lambda: ollama_error(litellm.exceptions.RateLimitError, "busy"), "model_busy", 503, "try again in a minute"),
        (OLLAMA, lambda: litellm.exceptions.Timeout("Request timed out", "qwen3:8b", "ollama_chat"), "model_timeout", 504, "did not answer within"),
        (ZAI, lambda: litellm.exceptions.AuthenticationError("bad key", "openai", "glm-4.7"), "model_auth", 503, "ZAI_API_KEY"),
        (ZAI, lambda: litellm.exceptions.APIConnectionError("no route", "openai", "glm-4.7"), "model_unreachable", 503, "ZAI_BASE_URL"),
        (OLLAMA, lambda: ContextOverflowError("the prompt needs about 9000 tokens"), "context_overflow", 413, "OLLAMA_NUM_CTX"),
        (OLLAMA, lambda: RuntimeError("something odd"), "model_error", 502, "failed to answer"),
    ],
)  # fmt: skip
def test_a_failing_model_call_is_told_to_the_owner_by_its_cause(
    make_runner: Callable[..., AgentRunner],
    resolved: ResolvedModel,
    raised: Callable[[], BaseException],
    code: str,
    status: int,
    says: str,
) -> None:
    events = run(make_runner(Script([lambda model: raised()]), ollama_base_url="http://localhost:11434"), resolved)
    # smolagents records the failed step before it gives up, so the owner sees a step without code, then why.
    assert kinds(events) == ["step", "error"], events
    assert events[0].tool_calls == [] and events[0].observation is None
    assert (events[1].code, events[1].status) == (code, status)
    assert says in events[1].error


def test_ollamas_own_reason_is_redacted_before_the_owner_reads_it(make_runner: Callable[..., AgentRunner]) -> None:
    failing = Script([lambda model: ollama_error(litellm.exceptions.InternalServerError, f"bad header {SECRET}")])
    event = run(make_runner(failing))[-1]
    assert isinstance(event, ErrorEvent) and event.code == "model_failed"
    assert SECRET not in event.error and "bad header [redacted]" in event.error


def test_the_model_is_given_the_budget_of_the_resolved_model(make_runner: Callable[..., AgentRunner]) -> None:
    budgets: list[int] = []

    def record(model: ScriptedModel) -> str:
        budgets.append(model.budget.prompt_tokens)
        return code('final_answer("ok")')

    runner = make_runner(Script([record]), ollama_num_ctx=4096, agent_max_output_tokens=512)
    run(runner, OLLAMA)
    run(runner, ZAI)
    assert budgets == [4096 - 512, 128_000 - 512]
