"""One agent turn as a stream of events. This generator feeds /run, /run/stream and the Gradio console alike."""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib.resources
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# LiteLLM fetches a price map from the internet when imported unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import yaml  # noqa: E402
from smolagents import ActionStep, CodeAgent, FinalAnswerStep, Tool  # noqa: E402
from smolagents.utils import AgentGenerationError

from errors import ServiceError, model_missing, model_unreachable, run_timeout
from history import Turn, build_task, estimate_tokens, fit_history, history_budget
from llm import AgentModel
from model_router import ModelRegistry, ResolvedModel
from redact import Redactor
from settings import Settings

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
# smolagents parses this YAML on every CodeAgent it builds (12 ms, half of a turn's overhead): parse it once.
PROMPT_TEMPLATES = yaml.safe_load(
    importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text()
)
ARGUMENT_PREVIEW_CHARS = 160


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
class FinalEvent:
    response: str
    model: str
    steps: int
    duration_ms: int
    usage: dict[str, int]
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


AgentEvent = StepEvent | DeltaEvent | FinalEvent | ErrorEvent


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


def _truncate(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


class AgentRunner:
    def __init__(self, settings: Settings, registry: ModelRegistry, tools: Sequence[Tool]) -> None:
        self._settings = settings
        self._registry = registry
        self._redactor = settings.redactor
        self._tools: list[Tool] = [RedactedTool(tool, self._redactor) for tool in tools]
        self._tool_names = {tool.name for tool in self._tools} | {"final_answer"}
        self._slots: asyncio.Semaphore | None = None

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools)

    @property
    def registry(self) -> ModelRegistry:
        return self._registry

    def warm_up(self) -> None:
        """Pay LiteLLM's lazy imports now (~200 ms) rather than in the owner's first turn; nothing leaves the machine."""
        chunks = litellm.completion(
            model="ollama_chat/warm-up", messages=[{"role": "user", "content": "hi"}], mock_response="ok", stream=True
        )
        for _ in chunks:
            pass

    def prepare(self, request: RunRequest) -> PreparedRun:
        """Resolve the model before anything is streamed, so a missing model is a plain HTTP error."""
        return PreparedRun(request, self._registry.resolve(request.model))

    def instructions(self, system_prompt: str | None) -> str:
        now = datetime.now().astimezone()
        guide = (
            f"Current date and time: {now:%A %d %B %Y, %H:%M} ({now.tzname()}).\n"
            "Answer in the language the persona above asks for; if it names none, in the language of the owner's message.\n"
            "For HTTP requests, data and dates use Python's own libraries (requests, json, datetime) in your code; "
            "use the file_system tool for files and os_exec only when nothing else does the job.\n"
            "Keep answers short and direct, and give the answer with final_answer(...) as soon as you have it."
        )
        persona = (system_prompt or "").strip()
        return f"{persona}\n\n{guide}" if persona else guide

    def _build_agent(
        self, prepared: PreparedRun, on_delta: Callable[[str], None], cancel: threading.Event
    ) -> CodeAgent:
        model = AgentModel(prepared.resolved, self._settings, on_delta=on_delta, cancel=cancel)

        def stop_if_cancelled(step: Any, agent: CodeAgent) -> None:
            if cancel.is_set():
                agent.interrupt()

        def redact_step(step: ActionStep, agent: CodeAgent) -> None:
            _redact_step(step, self._redactor)

        return CodeAgent(
            tools=self._tools,
            model=model,
            instructions=self.instructions(prepared.request.system_prompt),
            prompt_templates=copy.deepcopy(PROMPT_TEMPLATES),
            additional_authorized_imports=list(self._settings.agent_authorized_imports),
            max_steps=self._settings.agent_max_steps,
            executor_kwargs={"timeout_seconds": self._settings.agent_executor_timeout_s},
            verbosity_level=-1,
            # Called when a step ends, before its observation goes into the next prompt.
            step_callbacks=[redact_step, stop_if_cancelled],
        )

    def _task(self, agent: CodeAgent, request: RunRequest) -> str:
        # The prompt rendered when the agent was built; `agent.system_prompt` would render it again.
        fixed = estimate_tokens(agent.memory.system_prompt.system_prompt)
        budget = history_budget(self._settings.ollama_num_ctx, fixed, request.message)
        return build_task(request.message, fit_history(request.history, budget), request.image_paths)

    def events(self, prepared: PreparedRun, cancel: threading.Event | None = None) -> Iterator[AgentEvent]:
        """Run the agent, yielding events as they happen. Stops at the next step (or delta) once `cancel` is set.

        The agent runs in a thread of its own so that model deltas, which arrive through a callback in the middle
        of a step, reach the consumer as they are generated rather than at the end of the step.
        """
        cancel = cancel or threading.Event()
        started = time.monotonic()
        items: queue.Queue[object] = queue.Queue()
        agent = self._build_agent(prepared, lambda text: items.put(DeltaEvent(text)), cancel)
        task = self._task(agent, prepared.request)

        def drive() -> None:
            try:
                for item in agent.run(task, stream=True, reset=True):
                    items.put(item)
            except BaseException as exc:  # handed to the consumer, which decides what the owner sees
                items.put(_Failure(exc))
            finally:
                items.put(_DONE)

        threading.Thread(target=drive, name="agent-steps", daemon=True).start()
        steps = 0
        usage = {"input_tokens": 0, "output_tokens": 0}
        step_started = time.monotonic()
        redact = self._redactor.redact
        # A secret may straddle two deltas: the stream redactor holds back a tail, flushed when the step ends.
        deltas = self._redactor.stream()
        try:
            while (item := items.get()) is not _DONE:
                if cancel.is_set():
                    continue  # drain until the agent thread stops, without emitting
                if isinstance(item, DeltaEvent):
                    if text := deltas.feed(item.text):
                        yield DeltaEvent(text)
                    continue
                if tail := deltas.flush():
                    yield DeltaEvent(tail)
                if isinstance(item, ActionStep):
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
                    yield FinalEvent(
                        response=redact(str(item.output)),
                        model=prepared.resolved.model_id,
                        steps=steps,
                        duration_ms=round((time.monotonic() - started) * 1000),
                        usage=usage,
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
        if not isinstance(exc, AgentGenerationError):
            # The agent is third-party code: one bad turn must not take the service down, nor show its internals.
            logger.error("agent_run_failed", extra={"error_type": type(exc).__name__, "model": resolved.model_id})
            return ServiceError("agent_error", "The agent failed unexpectedly; see the agent's log and try again.", 500)
        # LiteLLM's exceptions derive from openai's, not from litellm.exceptions.OpenAIError: walk the chain to the
        # first one of the kinds told apart below (its own cause is the raw httpx error).
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, _MODEL_ERRORS):
            cause = cause.__cause__ or cause.__context__
        logger.warning(
            "model_call_failed", extra={"model": resolved.model_id, "error_type": type(cause or exc).__name__}
        )
        # Timeout derives from APIConnectionError: it must be told apart first.
        if isinstance(cause, litellm.exceptions.Timeout):
            return ServiceError(
                "model_timeout", "The model did not answer in time; try again or pick a smaller model.", 504
            )
        if resolved.provider == "ollama":
            if isinstance(cause, litellm.exceptions.APIConnectionError | litellm.exceptions.InternalServerError):
                return model_unreachable(self._settings.ollama_base_url)
            if isinstance(cause, litellm.exceptions.NotFoundError):
                return model_missing(resolved.model_id)
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
