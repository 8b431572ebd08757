"""The one CodeAgent the runner builds: smolagents' loop with a cheaper prompt, short step errors, capped
observations and an honest end in the owner's words when the steps run out."""

from __future__ import annotations

import ast
import logging
import math
from collections.abc import Sequence
from typing import Any

from smolagents import ActionStep, ChatMessage, CodeAgent, MessageRole, Model, Tool
from smolagents.utils import AgentParsingError

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
    "You have used all {steps} steps and cannot run more code. Without any code block, tell the owner in two or "
    "three sentences, in the language of their message, that you stopped before finishing and what you found so far."
)
OUT_OF_STEPS_FALLBACK = "I stopped after {steps} steps without finishing the task."
PRINTED_KEPT_CHARS = 1_000_000
# Two or three sentences take well under 200 tokens; a model that rambles instead costs 32 s more on a CPU, not 128.
SUMMARY_MAX_TOKENS = 256


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
            reply = self.model.generate(
                [*self.write_memory_to_messages(), request],
                stop_sequences=["Observation:"],
                max_tokens=SUMMARY_MAX_TOKENS,
            )
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


def build_agent(
    settings: Settings, tools: Sequence[Tool], model: Model, persona: str | None, callbacks: list[Any]
) -> ClawAgent:
    return ClawAgent(
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


class NoModel(Model):
    """Stands in for the model when an agent is built only to render its system prompt."""

    def generate(self, *args: Any, **kwargs: Any) -> ChatMessage:
        raise RuntimeError("not a model")


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
