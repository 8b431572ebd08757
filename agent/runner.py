"""One agent turn as a stream of events. This generator feeds /run, /run/stream and the Gradio console alike."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

# LiteLLM fetches a price map from the internet when imported unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import litellm  # noqa: E402
from smolagents import ActionStep, ChatMessage, CodeAgent, FinalAnswerStep, MessageRole, Model, Tool  # noqa: E402
from smolagents.utils import AgentGenerationError, AgentMaxStepsError, AgentParsingError

from context import MESSAGE_OVERHEAD_TOKENS, ContextOverflowError, cap_text, estimate_tokens, message_text
from errors import ServiceError, model_missing, model_unreachable, ollama_failed, run_timeout
from history import Turn, build_task, history_variants
from llm import AgentModel, RunCancelled, first_code_block
from model_router import ModelRegistry, ResolvedModel
from prompt import prompt_templates
from redact import Redactor
from settings import Settings

# LiteLLM prints coloured "Give Feedback / Get Help" banners to stdout on errors; the agent's output is JSON only.
litellm.suppress_debug_info = True
logger = logging.getLogger(__name__)

_MODEL_ERRORS = (
    litellm.exceptions.APIConnectionError,
    litellm.exceptions.APIError,
    litellm.exceptions.InternalServerError,
    litellm.exceptions.NotFoundError,
    litellm.exceptions.AuthenticationError,
    litellm.exceptions.RateLimitError,
    litellm.exceptions.Timeout,
    litellm.exceptions.BadRequestError,
    litellm.exceptions.OpenAIError,
)

OBSERVATION_PREVIEW_CHARS = 600
ARGUMENT_PREVIEW_CHARS = 160
# What the model reads back instead of smolagents' parsing error, which quotes the whole reply again.
NO_CODE_ERROR = (
    "Your reply had no code block. Reply with `Thought:` and one code block; to answer the owner, "
    'write final_answer("...") inside it.'
)
OUT_OF_STEPS_REQUEST = (
    "You have used all {steps} steps and cannot run more code. Without any code block, tell the owner in two or "
    "three sentences, in the language of their message, that you stopped before finishing and what you found so far."
)
OUT_OF_STEPS_FALLBACK = "I stopped after {steps} steps without finishing the task."


@dataclass(frozen=True)
class StepEvent:
    step: int
    tool_calls: list[dict[str, str]]
    observation: str | None
    error: str | None
    duration_ms: int
    name: str = field(default="step", init=False, repr=False)


@dataclass(frozen=True)
class DeltaEvent:
    text: str
    name: str = field(default="delta", init=False, repr=False)


@dataclass(frozen=True)
class ThinkingEvent:
    """A piece of the model's hidden reasoning (only when thinking is on): progress, never part of the answer."""

    text: str
    name: str = field(default="thinking", init=False, repr=False)


@dataclass(frozen=True)
class FinalEvent:
    response: str
    model: str
    steps: int
    duration_ms: int
    usage: dict[str, int]
    # False when the steps ran out: the response then says so and what was found, in the owner's language.
    finished: bool = True
    name: str = field(default="final", init=False, repr=False)


@dataclass(frozen=True)
class ErrorEvent:
    error: str
    code: str
    status: int
    name: str = field(default="error", init=False, repr=False)

    @classmethod
    def of(cls, exc: ServiceError) -> ErrorEvent:
        return cls(error=exc.message, code=exc.code, status=exc.status)


AgentEvent = StepEvent | DeltaEvent | ThinkingEvent | FinalEvent | ErrorEvent


def event_payload(event: AgentEvent) -> dict[str, Any]:
    """The JSON an event carries on the wire (SSE data, /run body)."""
    payload = asdict(event)
    payload.pop("name")
    payload.pop("status", None)
    return _well_formed(payload)


def _well_formed(value: Any) -> Any:
    """Pair up or replace lone surrogates, which UTF-8 cannot encode (the response would be a 500).

    The model's code may spell an emoji as two escapes, `final_answer("\\ud83d\\ude00")`, and Python keeps those
    as two lone surrogates rather than one character.
    """
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {key: _well_formed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_well_formed(item) for item in value]
    return value


@dataclass(frozen=True)
class RunRequest:
    message: str
    history: Sequence[Turn] = ()
    model: str = "smart"
    system_prompt: str | None = None
    image_paths: Sequence[Path] = ()
    request_id: str | None = None


@dataclass(frozen=True)
class PreparedRun:
    request: RunRequest
    resolved: ResolvedModel


_DONE = object()


@dataclass(frozen=True)
class _Failure:
    exc: BaseException


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and the ones it came from. LiteLLM's own derive from openai's, and their cause is httpx's."""
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _in_chain(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    return next((seen for seen in _chain(exc) if isinstance(seen, kind)), None)


def _ollama_reason(exc: BaseException) -> str | None:
    """Ollama's own words from an `{"error": "..."}` answer somewhere in the exception chain (LiteLLM keeps the body)."""
    for seen in _chain(exc):
        text = str(seen)
        start = text.find('{"error"')
        if start == -1:
            continue
        try:
            reason = json.loads(text[start:])["error"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(reason, str) and reason.strip():
            return reason.strip()[:300]
    return None


def _summarise_calls(code: str, tool_names: set[str]) -> list[dict[str, str]]:
    """Which tools a code action calls, with a short view of their arguments (for the owner's live view)."""
    calls: list[dict[str, str]] = []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [{"name": "python_interpreter", "arguments": code[:ARGUMENT_PREVIEW_CHARS]}]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in tool_names:
            args = [ast.unparse(a) for a in node.args] + [f"{k.arg}={ast.unparse(k.value)}" for k in node.keywords]
            calls.append({"name": node.func.id, "arguments": ", ".join(args)[:ARGUMENT_PREVIEW_CHARS]})
    return calls or [{"name": "python_interpreter", "arguments": code[:ARGUMENT_PREVIEW_CHARS]}]


class RedactedTool(Tool):
    """A tool whose output has the machine's secrets replaced, before the agent's code (and so the model) sees it."""

    skip_forward_signature_validation = True

    def __init__(self, inner: Tool, redactor: Redactor) -> None:
        self.name = inner.name
        self.description = inner.description
        self.inputs = inner.inputs
        self.output_type = inner.output_type
        super().__init__()
        self.inner = inner
        self._redactor = redactor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.inner(*args, **kwargs)
        return self._redactor.redact(output) if isinstance(output, str) else output


def _redact_step(step: ActionStep, redactor: Redactor) -> None:
    """What the model reads back from this step (observation, error, output) without secrets.

    Tool outputs are already clean; this catches what the agent's own code printed or raised.
    """
    step.observations = redactor.redact_optional(step.observations)
    if isinstance(step.action_output, str):
        step.action_output = redactor.redact(step.action_output)
    if step.error is not None:
        clean = redactor.redact(str(step.error))
        if clean != str(step.error):
            step.error.args = (clean,)
            step.error.message = clean


def _bound_step(step: ActionStep, max_observation_chars: int) -> None:
    """What the next prompt reads back from this step, kept small and useful.

    The printed output is capped (with a note saying how much was left out and how to read a slice); a reply with no
    code block gets a short error instead of smolagents' one, which quotes the whole reply again; an empty reply
    (a stop sequence met while thinking, say) is an error too, never a step that silently did nothing.
    """
    if step.observations is not None:
        step.observations = cap_text(step.observations, max_observation_chars)
    if isinstance(step.error, AgentParsingError):
        step.error = AgentParsingError(NO_CODE_ERROR, _QUIET_LOGGER)
    elif step.error is None and step.code_action is not None and not step.code_action.strip():
        step.error = AgentParsingError(NO_CODE_ERROR, _QUIET_LOGGER)
        step.observations = None


class _QuietLogger:
    """smolagents' errors log themselves on creation; ours go through the JSON log instead."""

    def log_error(self, error_message: str) -> None:
        return


_QUIET_LOGGER: Any = _QuietLogger()


def _truncate(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


class ClawAgent(CodeAgent):
    """smolagents' CodeAgent with a prompt that costs less to read, and an honest end when its steps run out."""

    def write_memory_to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        # Each step's code would otherwise be read twice: in the model's reply and again in a "Calling tools:" line.
        return [m for m in super().write_memory_to_messages(summary_mode) if m.role != MessageRole.TOOL_CALL]

    def provide_final_answer(self, task: str) -> ChatMessage:
        """Out of steps: the model says, in the owner's language, that it stopped and what it found.

        smolagents would ask with a different system prompt, so the model re-reads everything; the same messages
        plus one request keep Ollama's prompt cache. The result goes out with `finished: false`.
        """
        steps = self.max_steps
        request = ChatMessage(
            role=MessageRole.USER, content=[{"type": "text", "text": OUT_OF_STEPS_REQUEST.format(steps=steps)}]
        )
        text = ""
        try:
            reply = self.model.generate([*self.write_memory_to_messages(), request], stop_sequences=["Observation:"])
            text = _plain_answer(message_text(reply))
            usage = reply.token_usage
        except Exception as exc:  # the owner still gets an answer that says the task stopped
            if isinstance(exc, ContextOverflowError | RunCancelled):
                raise
            logger.warning("final_summary_failed", extra={"error_type": type(exc).__name__})
            usage = None
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=text or OUT_OF_STEPS_FALLBACK.format(steps=steps),
            token_usage=usage,
        )


def _plain_answer(text: str) -> str:
    """The owner-facing text of a reply: a `final_answer("…")` argument if the model wrote one, else its prose."""
    code = first_code_block(text)
    if "<code>" in code:
        try:
            tree = ast.parse(code.split("<code>", 1)[1].split("</code>", 1)[0])
        except SyntaxError:
            tree = None
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "final_answer" and node.args:
                if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    return node.args[0].value.strip()
        code = code.split("<code>", 1)[0]
    return code.removeprefix("Thought:").strip()


class _NoModel(Model):
    """Stands in for the model when an agent is built only to render its system prompt."""

    def generate(self, *args: Any, **kwargs: Any) -> ChatMessage:
        raise RuntimeError("not a model")


class AgentRunner:
    def __init__(self, settings: Settings, registry: ModelRegistry, tools: Sequence[Tool]) -> None:
        self._settings = settings
        self._registry = registry
        self._redactor = settings.redactor
        self._tools: list[Tool] = [RedactedTool(tool, self._redactor) for tool in tools]
        self._tool_names = {tool.name for tool in self._tools} | {"final_answer"}
        self._slots: asyncio.Semaphore | None = None
        self.system_prompt = lru_cache(maxsize=8)(self._render_system_prompt)
        # Told of every run (its persona) when it starts and ends: the warm-up keeps that model and prompt loaded.
        self.on_model_used: Callable[[str | None], None] = lambda persona: None

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools)

    @property
    def registry(self) -> ModelRegistry:
        return self._registry

    @property
    def settings(self) -> Settings:
        return self._settings

    def warm_up(self) -> None:
        """Pay LiteLLM's lazy imports now (~200 ms) rather than in the owner's first turn; nothing leaves the machine."""
        chunks = litellm.completion(
            model="ollama_chat/warm-up", messages=[{"role": "user", "content": "hi"}], mock_response="ok", stream=True
        )
        for _ in chunks:
            pass

    def prepare(self, request: RunRequest) -> PreparedRun:
        """Resolve the model and check the message can fit at all, before anything is streamed (plain HTTP errors)."""
        resolved = self._registry.resolve(request.model)
        if resolved.provider == "ollama":
            needed = (
                estimate_tokens(self.system_prompt(request.system_prompt))
                + estimate_tokens(build_task(request.message, (), request.image_paths, datetime.now().astimezone()))
                + 2 * MESSAGE_OVERHEAD_TOKENS
            )
            available = self._settings.ollama_num_ctx - self._settings.agent_max_output_tokens
            if needed > available:
                raise ServiceError(
                    "context_overflow",
                    f"The message is too long for the model's context window (about {needed} tokens with the "
                    f"instructions; {available} available). Send a shorter message or raise OLLAMA_NUM_CTX.",
                    413,
                )
        return PreparedRun(request, resolved)

    def _agent(self, model: Model, system_prompt: str | None, callbacks: list[Any]) -> ClawAgent:
        return ClawAgent(
            tools=self._tools,
            model=model,
            instructions=(system_prompt or "").strip() or None,
            prompt_templates=prompt_templates(),
            additional_authorized_imports=list(self._settings.agent_authorized_imports),
            max_steps=self._settings.agent_max_steps,
            max_print_outputs_length=self._settings.agent_max_observation_chars,
            executor_kwargs={"timeout_seconds": math.ceil(self._settings.agent_executor_timeout_s)},
            verbosity_level=-1,
            # Called when a step ends, before its observation goes into the next prompt.
            step_callbacks=callbacks,
        )

    def _render_system_prompt(self, persona: str | None) -> str:
        """The system prompt for this persona; without one, its fixed part, which every prompt starts with."""
        return self._agent(_NoModel(model_id="none"), persona, []).memory.system_prompt.system_prompt

    def _build_agent(
        self,
        prepared: PreparedRun,
        on_delta: Callable[[str], None],
        on_thinking: Callable[[str], None],
        cancel: threading.Event,
    ) -> ClawAgent:
        model = AgentModel(prepared.resolved, self._settings, on_delta=on_delta, cancel=cancel, on_thinking=on_thinking)

        def stop_if_cancelled(step: Any, agent: CodeAgent) -> None:
            if cancel.is_set():
                agent.interrupt()

        def bound_step(step: ActionStep, agent: CodeAgent) -> None:
            _redact_step(step, self._redactor)
            _bound_step(step, self._settings.agent_max_observation_chars)

        return self._agent(model, prepared.request.system_prompt, [bound_step, stop_if_cancelled])

    def _task(self, agent: ClawAgent, request: RunRequest) -> str:
        """The task with as much history as fits; the shorter variants go to the model's budget for later steps."""
        model = agent.model
        assert isinstance(model, AgentModel)
        now = datetime.now().astimezone()
        # The prompt rendered when the agent was built; `agent.system_prompt` would render it again.
        without_history = build_task(request.message, (), request.image_paths, now)
        fixed = estimate_tokens(agent.memory.system_prompt.system_prompt) + estimate_tokens(without_history)
        budget = model.budget.prompt_tokens - fixed - 3 * MESSAGE_OVERHEAD_TOKENS
        tasks = [
            build_task(request.message, kept, request.image_paths, now)
            for kept in history_variants(request.history, budget)
        ]
        model.budget = replace(model.budget, task_variants=tuple(tasks[1:]))
        return tasks[0]

    def events(self, prepared: PreparedRun, cancel: threading.Event | None = None) -> Iterator[AgentEvent]:
        """Run the agent, yielding events as they happen. Stops at the next step (or delta) once `cancel` is set.

        The agent runs in a thread of its own so that model deltas, which arrive through a callback in the middle
        of a step, reach the consumer as they are generated rather than at the end of the step.
        """
        cancel = cancel or threading.Event()
        started = time.monotonic()
        items: queue.Queue[object] = queue.Queue()
        agent = self._build_agent(
            prepared, lambda text: items.put(DeltaEvent(text)), lambda text: items.put(ThinkingEvent(text)), cancel
        )
        task = self._task(agent, prepared.request)
        persona = prepared.request.system_prompt

        def drive() -> None:
            self.on_model_used(persona)
            try:
                for item in agent.run(task, stream=True, reset=True):
                    items.put(item)
            except BaseException as exc:  # handed to the consumer, which decides what the owner sees
                items.put(_Failure(exc))
            finally:
                self.on_model_used(persona)
                items.put(_DONE)

        threading.Thread(target=drive, name="agent-steps", daemon=True).start()
        steps = 0
        seen_steps: list[ActionStep] = []
        usage = {"input_tokens": 0, "output_tokens": 0}
        step_started = time.monotonic()
        redact = self._redactor.redact
        # A secret may straddle two deltas: the stream redactors hold back a tail, flushed when the step ends.
        deltas, thoughts = self._redactor.stream(), self._redactor.stream()
        try:
            while (item := items.get()) is not _DONE:
                if cancel.is_set():
                    continue  # drain until the agent thread stops, without emitting
                if isinstance(item, DeltaEvent):
                    if text := deltas.feed(item.text):
                        yield DeltaEvent(text)
                    continue
                if isinstance(item, ThinkingEvent):
                    if text := thoughts.feed(item.text):
                        yield ThinkingEvent(text)
                    continue
                if tail := thoughts.flush():
                    yield ThinkingEvent(tail)
                if tail := deltas.flush():
                    yield DeltaEvent(tail)
                if isinstance(item, ActionStep):
                    if any(item is seen for seen in seen_steps):
                        continue  # smolagents yields the last step again when the steps run out
                    seen_steps.append(item)
                    steps += 1
                    if item.token_usage:
                        usage["input_tokens"] += item.token_usage.input_tokens
                        usage["output_tokens"] += item.token_usage.output_tokens
                    code = redact(item.code_action or "")
                    yield StepEvent(
                        step=item.step_number,
                        tool_calls=_summarise_calls(code, self._tool_names) if code else [],
                        observation=_truncate(
                            self._redactor.redact_optional(item.observations), OBSERVATION_PREVIEW_CHARS
                        ),
                        error=_truncate(redact(str(item.error)), OBSERVATION_PREVIEW_CHARS) if item.error else None,
                        duration_ms=round((time.monotonic() - step_started) * 1000),
                    )
                    step_started = time.monotonic()
                elif isinstance(item, FinalAnswerStep):
                    last = agent.memory.steps[-1] if agent.memory.steps else None
                    # The summary asked for when the steps ran out is recorded as a step with this error.
                    finished = not (isinstance(last, ActionStep) and isinstance(last.error, AgentMaxStepsError))
                    yield FinalEvent(
                        response=redact(str(item.output)),
                        model=prepared.resolved.model_id,
                        steps=steps,
                        duration_ms=round((time.monotonic() - started) * 1000),
                        usage=usage,
                        finished=finished,
                    )
                elif isinstance(item, _Failure):
                    failure = self._failure(item.exc, prepared.resolved)
                    yield ErrorEvent(error=redact(failure.message), code=failure.code, status=failure.status)
            if not cancel.is_set() and (tail := deltas.flush()):
                yield DeltaEvent(tail)
        finally:
            # Reached on normal end, on the consumer closing us early, or on an error: in every case stop the agent.
            cancel.set()

    def _failure(self, exc: BaseException, resolved: ResolvedModel) -> ServiceError:
        overflow = _in_chain(exc, ContextOverflowError)
        if overflow is not None:
            return ServiceError(
                "context_overflow",
                f"The task no longer fits the model's context window ({overflow}); ask for something smaller "
                "or raise OLLAMA_NUM_CTX.",
                413,
            )
        if not isinstance(exc, AgentGenerationError):
            # The agent is third-party code: one bad turn must not take the service down, nor show its internals.
            logger.error("agent_run_failed", extra={"error_type": type(exc).__name__, "model": resolved.model_id})
            return ServiceError("agent_error", "The agent failed unexpectedly; see the agent's log and try again.", 500)
        # The first exception of the kinds told apart below (LiteLLM's derive from openai's, not from its OpenAIError).
        cause = _in_chain(exc, _MODEL_ERRORS)
        logger.warning(
            "model_call_failed", extra={"model": resolved.model_id, "error_type": type(cause or exc).__name__}
        )
        # Timeout derives from APIConnectionError: it must be told apart first.
        if isinstance(cause, litellm.exceptions.Timeout):
            return ServiceError(
                "model_timeout",
                f"The model did not answer within {self._settings.agent_timeout_s:g} s; try again, ask for something "
                "smaller or pick a smaller model.",
                504,
            )
        if resolved.provider == "ollama":
            if _in_chain(exc, httpx.ConnectError) is not None:
                return model_unreachable(self._settings.ollama_base_url)
            if isinstance(cause, litellm.exceptions.NotFoundError):
                return model_missing(resolved.model_id)
            if not isinstance(cause, litellm.exceptions.RateLimitError) and (reason := _ollama_reason(exc)):
                return ollama_failed(resolved.model_id, reason)
            if isinstance(cause, litellm.exceptions.APIConnectionError):
                return model_unreachable(self._settings.ollama_base_url)
        if isinstance(cause, litellm.exceptions.AuthenticationError):
            return ServiceError("model_auth", "Z.ai refused the API key; check ZAI_API_KEY in .env.local.", 503)
        if isinstance(cause, litellm.exceptions.RateLimitError):
            return ServiceError(
                "model_busy", "The model provider is rate-limiting or overloaded; try again in a minute.", 503
            )
        if isinstance(cause, litellm.exceptions.APIConnectionError):
            return ServiceError(
                "model_unreachable", f"{resolved.provider} is not reachable; check the network and ZAI_BASE_URL.", 503
            )
        return ServiceError("model_error", "The model failed to answer; see the agent's log and try again.", 502)

    async def aevents(self, prepared: PreparedRun, timeout_s: float) -> AsyncIterator[AgentEvent]:
        """The same events for asyncio: the agent runs in its own thread, at most AGENT_MAX_CONCURRENCY at once.

        The run is bounded by `timeout_s` (waiting for a slot included). When the consumer goes away or the time
        runs out, the run is told to stop at its next step; its slot is freed only when its thread really ends.
        """
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._settings.agent_max_concurrency)
        slots = self._slots
        deadline = loop.time() + timeout_s
        queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        cancel = threading.Event()

        def work() -> None:
            try:
                for event in self.events(prepared, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)
                loop.call_soon_threadsafe(slots.release)

        try:
            try:
                await asyncio.wait_for(slots.acquire(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                yield ErrorEvent.of(run_timeout(timeout_s))
                return
            threading.Thread(target=work, name="agent-run", daemon=True).start()
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    yield ErrorEvent.of(run_timeout(timeout_s))
                    return
                if event is None:
                    return
                yield event
        finally:
            cancel.set()
