"""Request bodies of the HTTP API, validated once at the edge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_MESSAGE_CHARS = 32_000
MAX_IMAGES = 5
MAX_REPLY_TO_CHARS = 1000
MAX_TURN_REF_CHARS = 1000


class ErrorBody(BaseModel):
    """Every error the service answers, documented in the OpenAPI schema."""

    error: str
    code: str


# Statuses a run can end with besides 200; FastAPI's default 422 shape is replaced by ours.
RUN_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (401, 413, 422, 502, 503, 504)
}


class HistoryItem(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS * 4)


class RunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    history: list[HistoryItem] = Field(default_factory=list, max_length=2000)
    model: str = Field(default="smart", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/\-]+$")
    system_prompt: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)
    # Opaque name of the chat the turn came from, for schedule_message; the gateway sends none for cron turns.
    reply_to: str | None = Field(default=None, max_length=MAX_REPLY_TO_CHARS, repr=False)
    # The gateway's signed, opaque reference of the turn, under which approvals are asked (approvals.py); never logged.
    turn_ref: str | None = Field(default=None, max_length=MAX_TURN_REF_CHARS, repr=False)
    # False: a scheduled turn nobody watches, whose side effects are refused rather than waiting for the owner.
    attended: bool = True

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message is empty")
        return value
