"""What fits in the model's context window: a conservative token estimate, capped observations, and a step's
prompt shortened to fit, so that Ollama never has to truncate it (it would drop the task first)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from smolagents import ChatMessage, MessageRole

# Chat-template tokens around each message (`<|im_start|>role\n … <|im_end|>\n`), rounded up.
MESSAGE_OVERHEAD_TOKENS = 8
# What an observation is cut to when an older step must make room.
SHORTENED_OBSERVATION_CHARS = 300
# The least of the latest observation kept when it alone is too long for the context window.
LATEST_KEPT_MIN_CHARS = 200
TASK_PREFIX = "New task:\n"
_MIXED_CASE = re.compile(r"[A-Za-z]*[a-z][A-Z][A-Za-z]*")
_LONE_SPACE = re.compile(r"\s+(?![A-Za-z])")
# The note a tool ends its output with when it cut it itself (file_system, os_exec, clipboard): "[truncated: …]".
_TOOL_NOTE = re.compile(r"^\[(?:output )?truncated[^\n]{0,400}$", re.MULTILINE)


def estimate_tokens(text: str) -> int:
    """Tokens a model will read for `text`, erring high: we do not have the tokenizer of every model.

    Measured against Qwen's BPE (tests/test_context.py): words run 3-4.5 characters a token, but every digit is a
    token of its own, punctuation and non-ASCII characters are often one each, a space before a number or a symbol
    is one more, and a run of mixed-case letters (identifiers, base64) splits into short pieces.
    """
    single = sum(1 for char in text if not char.isascii() or not (char.isalpha() or char.isspace()))
    mixed = sum(len(match.group()) for match in _MIXED_CASE.finditer(text))
    lone_spaces = len(_LONE_SPACE.findall(text))
    return single + lone_spaces + math.ceil(mixed / 1.5) + math.ceil((len(text) - single - mixed) / 3)


def cap_text(text: str, limit: int) -> str:
    """The start of `text` up to `limit` characters, ending with how much was left out and how to read more.

    A tool's own note in the part left out (file_system's "[truncated: … a 300090-byte file …]") is kept after
    ours: it says what the printed value itself is missing.
    """
    if len(text) <= limit:
        return text
    left_out = len(text) - limit
    notes = _TOOL_NOTE.findall(text, limit)
    return (
        text[:limit]
        + f"\n[… {left_out} more characters left out of {len(text)}. To read more, print a slice of the value "
        f"(e.g. print(text[{limit}:{limit * 2}])) or search it with re, instead of printing it whole.]"
        + "".join(f"\n{note}" for note in notes[-1:])
    )


def message_text(message: ChatMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _with_text(message: ChatMessage, text: str) -> ChatMessage:
    return replace(message, content=[{"type": "text", "text": text}])


def estimate_messages(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_tokens(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages)


class ContextOverflowError(Exception):
    """Even with every observation and all history left out, the prompt does not fit the context window."""


@dataclass(frozen=True)
class ContextBudget:
    """Fits each step's messages into `prompt_tokens`: the context window minus the output cap.

    Order of sacrifice, as the owner would choose: first the oldest observations (kept short, with a note), then
    the oldest turns of the conversation's history (through `task_variants`, the task rendered with less and less
    history), then the model's own earlier replies; never the system prompt, the current message or the latest
    step.
    """

    prompt_tokens: int
    task_variants: tuple[str, ...] = ()

    def _shorten(self, fitted: list[ChatMessage], indexes: Sequence[int], what: str) -> bool:
        """Cut these messages, oldest first, until the prompt fits; True once it does."""
        for index in indexes:
            text = message_text(fitted[index])
            if len(text) > SHORTENED_OBSERVATION_CHARS:
                fitted[index] = _with_text(
                    fitted[index],
                    text[:SHORTENED_OBSERVATION_CHARS]
                    + f"\n[… {len(text) - SHORTENED_OBSERVATION_CHARS} characters of this {what} left out"
                    " to fit the context window]",
                )
                if estimate_messages(fitted) <= self.prompt_tokens:
                    return True
        return False

    def _cut_to_fit(self, fitted: list[ChatMessage], index: int) -> bool:
        """Keep as much of this message's start as fits (at least a few lines), with a note; True once it fits."""
        text = message_text(fitted[index])
        others = estimate_messages(fitted) - estimate_messages(fitted[index : index + 1])
        low, high = LATEST_KEPT_MIN_CHARS, len(text) - 1
        best: ChatMessage | None = None
        while low <= high:
            middle = (low + high) // 2
            candidate = _with_text(
                fitted[index],
                text[:middle] + f"\n[… {len(text) - middle} more characters of this observation left out to fit the "
                "context window. Print a smaller slice, or search the value with re.]",
            )
            if others + estimate_messages([candidate]) <= self.prompt_tokens:
                best, low = candidate, middle + 1
            else:
                high = middle - 1
        if best is None:
            return False
        fitted[index] = best
        return True

    def fit(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        fitted = list(messages)
        if estimate_messages(fitted) <= self.prompt_tokens:
            return fitted
        # Observations and errors come back as tool-response (or user) messages after the task; the last one is
        # what the model needs now.
        task_index = next((i for i, m in enumerate(fitted) if message_text(m).startswith(TASK_PREFIX)), None)
        start = (task_index + 1) if task_index is not None else 1
        older = [
            i for i in range(start, len(fitted) - 1) if fitted[i].role in (MessageRole.TOOL_RESPONSE, MessageRole.USER)
        ]
        if self._shorten(fitted, older, "old observation"):
            return fitted
        if task_index is not None:
            for variant in self.task_variants:
                fitted[task_index] = _with_text(fitted[task_index], TASK_PREFIX + variant)
                if estimate_messages(fitted) <= self.prompt_tokens:
                    return fitted
        # Then the model's own earlier replies (a small model may write its whole output cap each step).
        replies = [i for i in range(start, len(fitted) - 2) if fitted[i].role == MessageRole.ASSISTANT]
        if self._shorten(fitted, replies, "earlier reply"):
            return fitted
        # Last, the latest observation itself, to what still fits: with a small num_ctx one printed page is enough.
        latest = len(fitted) - 1
        if latest >= start and fitted[latest].role in (MessageRole.TOOL_RESPONSE, MessageRole.USER):
            if self._cut_to_fit(fitted, latest):
                return fitted
        raise ContextOverflowError(
            f"the prompt needs about {estimate_messages(fitted)} tokens, more than the {self.prompt_tokens} available"
        )


def content_texts(messages: Sequence[ChatMessage | dict[str, Any]]) -> list[ChatMessage]:
    """smolagents hands ChatMessage objects, tests sometimes plain dicts: one type from here on."""
    return [m if isinstance(m, ChatMessage) else ChatMessage.from_dict(m) for m in messages]
