"""What the owner sees of a run: model deltas and smolagents' stream items turned into events, redacted,
summarised and counted. Everything here runs on the agent's own thread, in the order the agent produced it."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable

from smolagents import ActionStep, CodeAgent, FinalAnswerStep
from smolagents.utils import AgentMaxStepsError

from errors import ServiceError
from events import AgentEvent, ApprovalEvent, DeltaEvent, ErrorEvent, FinalEvent, StepEvent, ThinkingEvent
from redact import Redactor

OBSERVATION_PREVIEW_CHARS = 600
ARGUMENT_PREVIEW_CHARS = 160


class EventStream:
    """Hands `emit` the events of one run. Once `cancel` is set, nothing more is emitted (nor any failure mapped)."""

    def __init__(
        self,
        model_id: str,
        redactor: Redactor,
        tool_names: set[str],
        cancel: threading.Event,
        emit: Callable[[AgentEvent], None],
        failure: Callable[[BaseException], ServiceError],
    ) -> None:
        self._model_id = model_id
        self._redactor = redactor
        self._tool_names = tool_names
        self._cancel = cancel
        self._emit = emit
        self._failure = failure
        self._started = self._step_started = time.monotonic()
        self._steps = 0
        self._seen: list[ActionStep] = []
        self._usage = {"input_tokens": 0, "output_tokens": 0}
        # A secret may straddle two deltas: the stream redactors hold back a tail, flushed when the step ends.
        self._deltas, self._thoughts = redactor.stream(), redactor.stream()

    def delta(self, text: str) -> None:
        if not self._cancel.is_set() and (clean := self._deltas.feed(text)):
            self._emit(DeltaEvent(clean))

    def thinking(self, text: str) -> None:
        if not self._cancel.is_set() and (clean := self._thoughts.feed(text)):
            self._emit(ThinkingEvent(clean))

    def approval(self, event: ApprovalEvent) -> None:
        """An approval asked or decided (approvals.py), from the thread running the agent's code while the run's
        own thread waits for that code: after the text the model wrote before it."""
        if not self._cancel.is_set():
            self._flush()
            self._emit(event)

    def item(self, item: object, agent: CodeAgent) -> None:
        """One item of `agent.run(stream=True)`: a step, the final answer, or an item of no interest to the owner."""
        if self._cancel.is_set():
            return
        self._flush()
        if isinstance(item, ActionStep):
            if any(item is seen for seen in self._seen):
                return  # smolagents yields the last step again when the steps run out
            self._seen.append(item)
            self._step(item)
        elif isinstance(item, FinalAnswerStep):
            last = agent.memory.steps[-1] if agent.memory.steps else None
            # The summary asked for when the steps ran out is recorded as a step with this error.
            finished = not (isinstance(last, ActionStep) and isinstance(last.error, AgentMaxStepsError))
            self._emit(
                FinalEvent(
                    response=self._redactor.redact(str(item.output)),
                    model=self._model_id,
                    steps=self._steps,
                    duration_ms=round((time.monotonic() - self._started) * 1000),
                    usage=self._usage,
                    finished=finished,
                )
            )

    def fail(self, exc: BaseException) -> None:
        if self._cancel.is_set():
            return
        self._flush()
        failure = self._failure(exc)
        self._emit(ErrorEvent(error=self._redactor.redact(failure.message), code=failure.code, status=failure.status))

    def end(self) -> None:
        if not self._cancel.is_set() and (tail := self._deltas.flush()):
            self._emit(DeltaEvent(tail))

    def _flush(self) -> None:
        if tail := self._thoughts.flush():
            self._emit(ThinkingEvent(tail))
        if tail := self._deltas.flush():
            self._emit(DeltaEvent(tail))

    def _step(self, step: ActionStep) -> None:
        self._steps += 1
        if step.token_usage:
            self._usage["input_tokens"] += step.token_usage.input_tokens
            self._usage["output_tokens"] += step.token_usage.output_tokens
        redact = self._redactor.redact
        code = redact(step.code_action or "")
        self._emit(
            StepEvent(
                step=step.step_number,
                tool_calls=summarise_calls(code, self._tool_names) if code else [],
                observation=_truncate(self._redactor.redact_optional(step.observations), OBSERVATION_PREVIEW_CHARS),
                error=_truncate(redact(str(step.error)), OBSERVATION_PREVIEW_CHARS) if step.error else None,
                duration_ms=round((time.monotonic() - self._step_started) * 1000),
            )
        )
        self._step_started = time.monotonic()


def summarise_calls(code: str, tool_names: set[str]) -> list[dict[str, str]]:
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


def _truncate(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"
