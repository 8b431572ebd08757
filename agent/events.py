"""The events of one agent turn and their wire form: what /run returns, /run/stream sends and the console shows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from errors import ServiceError


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
    # The files sent with the answer (send_file): {"id", "name", "mime", "size", "caption"} each, fetched with
    # GET /files/{id}; always present, [] when none.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # The owner's approvals this run needed (approvals.py): {"tool", "decision", "waited_s"} each, decision one of
    # approved, denied, expired, unattended, console, limit, repeated, error; always present, [] when none.
    approvals: list[dict[str, Any]] = field(default_factory=list)
    name: str = field(default="final", init=False, repr=False)


@dataclass(frozen=True)
class ApprovalEvent:
    """A side effect waiting for the owner (state "pending"), then decided (approved, denied, expired, executed).

    `id` and `expires_at` are the gateway's; `summary` is the tool and its arguments, secrets redacted, shortened;
    `source` says why it needs approval ("the assistant read web search results in this turn").
    """

    id: str
    tool: str
    summary: str
    state: str
    expires_at: str
    source: str = ""
    name: str = field(default="approval", init=False, repr=False)


@dataclass(frozen=True)
class ErrorEvent:
    error: str
    code: str
    status: int
    name: str = field(default="error", init=False, repr=False)

    @classmethod
    def of(cls, exc: ServiceError) -> ErrorEvent:
        return cls(error=exc.message, code=exc.code, status=exc.status)


AgentEvent = StepEvent | DeltaEvent | ThinkingEvent | ApprovalEvent | FinalEvent | ErrorEvent


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
