"""The one CodeAgent the runner builds: smolagents' loop with a cheaper prompt, short step errors, capped
observations and an honest end in the owner's words when the steps, or the time, run out."""

from __future__ import annotations

import ast
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smolagents import ActionStep, ChatMessage, CodeAgent, MessageRole, Model, Tool
from smolagents.utils import AgentMaxStepsError, AgentParsingError

from context import ContextOverflowError, cap_text, message_text
from llm import RunCancelled, first_code_block
from prompt import prompt_templates
from settings import Settings

# Every log line of a run keeps the one logger name, whichever module writes it.
logger = logging.getLogger("runner")

# What the model reads back instead of smolagents' parsing error, which quotes the whole reply again.
NO_CODE_ERROR = (
    "Your reply had no code block. Reply with `Thought:` and one code block; to answer the owner, "
    'write final_answer("...") inside it.'
)
OUT_OF_STEPS_REQUEST = (
    "You cannot run more code for this task: its steps or its time ran out after {steps}. Without any code "
    "block, tell the owner in two or three sentences, in the language of their message, that you stopped before "
    "finishing and what you found so far."
)
OUT_OF_STEPS_FALLBACK = "I stopped after {steps} without finishing the task."
PRINTED_KEPT_CHARS = 1_000_000
# Two or three sentences take well under 200 tokens; a model that rambles instead costs 32 s more on a CPU, not 128.
SUMMARY_MAX_TOKENS = 256
# The summary stops being read this long before the run's deadline, so that the answer leaves before the time-out;
# with less time than SUMMARY_MIN_S left, it is not asked for at all.
SUMMARY_MARGIN_S = 2.0
SUMMARY_MIN_S = 5.0


@dataclass(frozen=True)
class RunClock:
    """When the run must have ended (a time.monotonic() instant; None: no limit), pushed later by the time it spent
    waiting for the owner's approval."""

    deadline: float | None = None
    paused_s: Callable[[], float] = lambda: 0.0

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline + self.paused_s() - time.monotonic()


class ClawAgent(CodeAgent):
    """smolagents' CodeAgent with a prompt that costs less to read, and an honest end when its steps or its time run
    out."""

    def __init__(self, *, clock: RunClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        # Each step's own time: its duration less what it spent waiting for the owner's approval.
        self._step_seconds: list[float] = []
        self._paused_seen = 0.0

    def end_in_time(self, step: ActionStep) -> None:
        """After a step: when the time left would not hold another step as long as the longest so far and then the
        summary, stop here and summarise, rather than be cut off by the time-out with nothing to show.

        smolagents' loop runs while `step_number <= max_steps` and asks for the summary when it ends one past it; this
        callback runs before the step number is incremented, so setting it to max_steps ends the loop the same way
        running out of steps does.
        """
        if isinstance(step.error, AgentMaxStepsError):
            return
        paused = self.clock.paused_s()
        self._step_seconds.append(max(0.0, (step.timing.duration or 0.0) - (paused - self._paused_seen)))
        self._paused_seen = paused
        if step.is_final_answer or step.step_number >= self.max_steps:
            return
        longest = max(self._step_seconds)
        left = self.clock.left()
        if left < 2 * longest:
            logger.info(
                "run_ending_in_time",
                extra={"step": step.step_number, "left_s": round(left, 1), "longest_step_s": round(longest, 1)},
            )
            self.step_number = self.max_steps

    def write_memory_to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        # Each step's code would otherwise be read twice: in the model's reply and again in a "Calling tools:" line.
        return [m for m in super().write_memory_to_messages(summary_mode) if m.role != MessageRole.TOOL_CALL]

    def provide_final_answer(self, task: str) -> ChatMessage:
        """Out of steps: the model says, in the owner's language, that it stopped and what it found.

        smolagents would ask with a different system prompt, so the model re-reads everything; the same messages
        plus one request keep Ollama's prompt cache. The result goes out with `finished: false`.
        """
        steps = sum(1 for s in self.memory.steps if isinstance(s, ActionStep))
        request = ChatMessage(
            role=MessageRole.USER,
            content=[{"type": "text", "text": OUT_OF_STEPS_REQUEST.format(steps=steps_text(steps))}],
        )
        text = ""
        usage = None
        left = self.clock.left()
        try:
            if left >= SUMMARY_MIN_S:
                reply = self.model.generate(
                    [*self.write_memory_to_messages(), request],
                    stop_sequences=["Observation:"],
                    max_tokens=SUMMARY_MAX_TOKENS,
                    # What it wrote by then is the summary (llm.AgentModel stops reading there).
                    stop_at=time.monotonic() + left - SUMMARY_MARGIN_S,
                )
                text = _plain_answer(message_text(reply))
                usage = reply.token_usage
        except Exception as exc:  # the owner still gets an answer that says the task stopped
            if isinstance(exc, ContextOverflowError | RunCancelled):
                raise
            logger.warning("final_summary_failed", extra={"error_type": type(exc).__name__})
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=text or OUT_OF_STEPS_FALLBACK.format(steps=steps_text(steps)),
            token_usage=usage,
        )


def build_agent(
    settings: Settings,
    tools: Sequence[Tool],
    model: Model,
    persona: str | None,
    callbacks: list[Any],
    clock: RunClock | None = None,
) -> ClawAgent:
    agent = ClawAgent(
        clock=clock or RunClock(),
        tools=list(tools),
        model=model,
        instructions=(persona or "").strip() or None,
        prompt_templates=prompt_templates(),
        additional_authorized_imports=list(settings.agent_authorized_imports),
        max_steps=settings.agent_max_steps,
        # smolagents would cut printed output to the cap itself, keeping its start and end, so that bound_step
        # could no longer say how much was left out; it keeps up to this much, and bound_step caps it.
        max_print_outputs_length=PRINTED_KEPT_CHARS,
        executor_kwargs={"timeout_seconds": math.ceil(settings.agent_executor_timeout_s)},
        verbosity_level=-1,
        # Called when a step ends, before its observation goes into the next prompt.
        step_callbacks=callbacks,
    )
    agent.step_callbacks.register(ActionStep, agent.end_in_time)  # after the runner's own callbacks
    return agent


class NoModel(Model):
    """Stands in for the model when an agent is built only to render its system prompt."""

    def generate(self, *args: Any, **kwargs: Any) -> ChatMessage:
        raise RuntimeError("not a model")


def steps_text(count: int) -> str:
    return f"{count} step{'' if count == 1 else 's'}"


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


def bound_step(step: ActionStep, max_observation_chars: int) -> None:
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
