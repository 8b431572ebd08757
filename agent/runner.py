"""One agent turn as a stream of events. This generator feeds /run, /run/stream and the Gradio console alike."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from smolagents import ActionStep, CodeAgent, Tool

from approvals import IMAGE_IN_CHAT, GatewayApprover, GuardedTool, RunApprovals, install_guards
from claw_agent import ClawAgent, NoModel, RunClock, bound_step, build_agent
from context import MESSAGE_OVERHEAD_TOKENS, ContextBudget, estimate_tokens
from errors import ServiceError, run_timeout
from event_stream import EventStream
from events import AgentEvent, DeltaEvent, ErrorEvent, FinalEvent, StepEvent, ThinkingEvent
from history import Turn, build_task, history_variants
from llm import AgentModel, ModelFactory, context_budget
from model_errors import run_failure
from model_router import ModelRegistry, ResolvedModel
from outbox import Outbox
from redact import RedactedTool, redact_step
from settings import Settings
from tools.run_context import RunContext, bind_to_run, run_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    message: str
    history: Sequence[Turn] = ()
    model: str = "smart"
    system_prompt: str | None = None
    image_paths: Sequence[Path] = ()
    request_id: str | None = None
    # The chat the turn came from (opaque, from the gateway), for schedule_message; never logged, so not in repr.
    reply_to: str | None = field(default=None, repr=False)
    # The gateway's signed reference of the turn, which approvals are asked under (approvals.py); None from the
    # console and in tests, where nothing can be asked. Never logged.
    turn_ref: str | None = field(default=None, repr=False)
    # False: a scheduled turn nobody watches, whose side effects cannot wait for the owner's approval.
    attended: bool = True


@dataclass(frozen=True)
class PreparedRun:
    request: RunRequest
    resolved: ResolvedModel


class AgentRunner:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        tools: Sequence[Tool],
        model_factory: ModelFactory = AgentModel,
        outbox: Outbox | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._redactor = settings.redactor
        # Each tool's output redacted, and its calls under the run's approvals (approvals.py).
        self._tools: list[Tool] = [GuardedTool(RedactedTool(tool, self._redactor)) for tool in tools]
        self._tool_names = {tool.name for tool in self._tools} | {"final_answer"}
        self._model_factory = model_factory
        # Asks the owner through the gateway; the guards under the agent's own code go in once per process.
        self._approver = GatewayApprover(settings.gateway_url, settings.api_key, settings.approval_timeout_s)
        install_guards()
        # The files runs send back (send_file), until the gateway fetches them with GET /files/{id}.
        self.outbox = outbox or Outbox(
            settings.readable_dirs,
            settings.protected_files,
            max_bytes=settings.agent_max_attachment_bytes,
            ttl_s=settings.agent_attachment_ttl_s,
        )
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
        from llm import litellm  # set up there (bundled price map, no banners)

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
            available = context_budget(resolved, self._settings).prompt_tokens
            if needed > available:
                raise ServiceError(
                    "context_overflow",
                    f"The message is too long for the model's context window (about {needed} tokens with the "
                    f"instructions; {available} available). Send a shorter message or raise OLLAMA_NUM_CTX.",
                    413,
                )
        return PreparedRun(request, resolved)

    def _render_system_prompt(self, persona: str | None) -> str:
        """The system prompt for this persona; without one, its fixed part, which every prompt starts with."""
        agent = build_agent(self._settings, self._tools, NoModel(model_id="none"), persona, [])
        return agent.memory.system_prompt.system_prompt

    def _task(self, prepared: PreparedRun) -> tuple[str, ContextBudget]:
        """The task with as much history as fits, and the model's budget, which holds the shorter variants."""
        request = prepared.request
        budget = context_budget(prepared.resolved, self._settings)
        now = datetime.now().astimezone()
        without_history = build_task(request.message, (), request.image_paths, now)
        fixed = estimate_tokens(self.system_prompt(request.system_prompt)) + estimate_tokens(without_history)
        room = budget.prompt_tokens - fixed - 3 * MESSAGE_OVERHEAD_TOKENS
        tasks = [
            build_task(request.message, kept, request.image_paths, now)
            for kept in history_variants(request.history, room)
        ]
        return tasks[0], replace(budget, task_variants=tuple(tasks[1:]))

    def _build_agent(
        self, prepared: PreparedRun, stream: EventStream, cancel: threading.Event, context: RunContext, clock: RunClock
    ) -> tuple[ClawAgent, str]:
        task, budget = self._task(prepared)
        model = self._model_factory(
            prepared.resolved,
            self._settings,
            on_delta=stream.delta,
            cancel=cancel,
            on_thinking=stream.thinking,
            budget=budget,
        )

        def stop_if_cancelled(step: Any, agent: CodeAgent) -> None:
            if cancel.is_set():
                agent.interrupt()

        def bound(step: ActionStep, agent: CodeAgent) -> None:
            redact_step(step, self._redactor)
            bound_step(step, self._settings.agent_max_observation_chars)

        # The shared tools, those that need it bound to this run's context (tools/run_context.py): never stored on them.
        tools = bind_to_run(self._tools, context)
        persona = prepared.request.system_prompt
        return build_agent(self._settings, tools, model, persona, [bound, stop_if_cancelled], clock), task

    def _start(
        self,
        prepared: PreparedRun,
        cancel: threading.Event,
        emit: Callable[[AgentEvent | None], None],
        deadline: float | None = None,
    ) -> RunApprovals:
        """Run the agent in a thread of its own, handing `emit` each event as it happens, then None once it has ended.

        The one bridge between the agent and its consumer: model deltas arrive through a callback in the middle of a
        step, steps through smolagents' stream, approvals from the code's thread while this one waits for it, and
        all reach `emit` in order. Returns the run's approvals (its time spent waiting for the owner moves the deadline).
        `deadline` (time.monotonic()) lets the agent end with a summary before it is cut off.
        """
        request = prepared.request

        def emit_with_files(event: AgentEvent) -> None:
            if isinstance(event, FinalEvent):
                files = [self._redacted_wire(entry.wire()) for entry in context.attachments]
                event = replace(event, attachments=files, approvals=list(approvals.asked))
            emit(event)

        stream = EventStream(
            prepared.resolved.model_id,
            self._redactor,
            self._tool_names,
            cancel,
            emit_with_files,
            partial(run_failure, resolved=prepared.resolved, settings=self._settings),
        )
        approvals = RunApprovals(
            mode=self._settings.approval_mode,
            timeout_s=self._settings.approval_timeout_s,
            redactor=self._redactor,
            approver=self._approver,
            turn_ref=request.turn_ref,
            attended=request.attended,
            cancel=cancel,
            emit=stream.approval,
        )
        if request.image_paths:  # an image sent in the chat is outside content from the start
            approvals.mark_outside(IMAGE_IN_CHAT)
        # One context per run: the tools read it (reply_to, the outbox, the approvals) and fill it (the files sent
        # back, the approvals asked), and the final event lists those.
        context = RunContext(reply_to=request.reply_to, outbox=self.outbox, approvals=approvals)
        clock = RunClock(deadline, approvals.paused_s)
        persona = request.system_prompt

        def drive() -> None:
            # The run's context for the whole run in this thread; smolagents' code worker starts from a copy of it.
            with run_context(context):
                try:
                    agent, task = self._build_agent(prepared, stream, cancel, context, clock)
                    self.on_model_used(persona)
                    for item in agent.run(task, stream=True, reset=True):
                        stream.item(item, agent)
                except BaseException as exc:  # mapped to what the owner may see
                    stream.fail(exc)
                finally:
                    self.on_model_used(persona)
                    stream.end()
                    emit(None)

        threading.Thread(target=drive, name="agent-steps", daemon=True).start()
        return approvals

    def _redacted_wire(self, wire: dict[str, Any]) -> dict[str, Any]:
        """A file's entry as the owner sees it: its name and caption cleaned of secrets like the answer."""
        return {
            **wire,
            "name": self._redactor.redact(wire["name"]),
            "caption": self._redactor.redact_optional(wire["caption"]),
        }

    def events(
        self, prepared: PreparedRun, cancel: threading.Event | None = None, deadline: float | None = None
    ) -> Iterator[AgentEvent]:
        """Run the agent, yielding events as they happen. Stops at the next step (or delta) once `cancel` is set;
        the generator then ends when the agent's thread has. With a `deadline` (time.monotonic()), the agent ends
        with a summary before it, as under aevents' time limit; enforcing the deadline is the caller's."""
        cancel = cancel or threading.Event()
        items: queue.Queue[AgentEvent | None] = queue.Queue()
        self._start(prepared, cancel, items.put, deadline)
        try:
            while (event := items.get()) is not None:
                if not cancel.is_set():
                    yield event
        finally:
            # Reached on normal end, on the consumer closing us early, or on an error: in every case stop the agent.
            cancel.set()

    async def aevents(self, prepared: PreparedRun, timeout_s: float) -> AsyncGenerator[AgentEvent, None]:
        """The same events for asyncio: the agent runs in its own thread, at most AGENT_MAX_CONCURRENCY at once.

        The run is bounded by `timeout_s` (waiting for a slot included), not counting the time it spent waiting for
        the owner's approval. When the consumer goes away or the time runs out, the run is told to stop at its next
        step; its slot is freed only when its thread really ends.
        """
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._settings.agent_max_concurrency)
        slots = self._slots
        deadline = loop.time() + timeout_s
        items: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        cancel = threading.Event()

        def deliver(event: AgentEvent | None) -> None:
            items.put_nowait(event)
            if event is None:
                slots.release()

        def emit(event: AgentEvent | None) -> None:
            loop.call_soon_threadsafe(deliver, event)

        try:
            try:
                await asyncio.wait_for(slots.acquire(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                yield ErrorEvent.of(run_timeout(timeout_s, "queued"))
                return
            # The agent thread reads time.monotonic(); the event loop's clock may be another (uvloop's).
            approvals = self._start(prepared, cancel, emit, time.monotonic() + deadline - loop.time())
            model_spoke = False  # for the time-out's message: a model that never answered is the likely cause
            while True:
                # The deadline moves later by the time spent waiting for the owner; during a wait it stands still.
                left = deadline + approvals.paused_s() - loop.time()
                try:
                    event = await asyncio.wait_for(items.get(), max(left, 0.5 if approvals.clock.waiting else 0.0))
                except TimeoutError:
                    if approvals.clock.waiting or deadline + approvals.paused_s() > loop.time():
                        continue
                    yield ErrorEvent.of(run_timeout(timeout_s, "running" if model_spoke else "silent"))
                    return
                if event is None:
                    return
                model_spoke = model_spoke or isinstance(event, DeltaEvent | ThinkingEvent | StepEvent)
                yield event
        finally:
            cancel.set()
