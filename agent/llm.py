"""The model the CodeAgent talks to: LiteLLM, always streamed, with deltas relayed and GLM's output cleaned."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from smolagents import ChatMessage, LiteLLMModel, MessageRole, TokenUsage

from model_router import ResolvedModel
from settings import Settings

_CODE_TAG = re.compile(r"</?code>")
_TRAILING_JUNK = re.compile(r"(?:\s*(?:</s>|</code(?!>)))+\s*$")


class RunCancelled(Exception):
    """Raised inside the agent thread when the run was stopped (timeout or client gone)."""


def clean_model_text(text: str) -> str:
    """Repair what GLM and some local models emit around code blocks so smolagents' parser accepts it.

    GLM-4.7 often ends a block with `</code` (no `>`) or `</s>`, and sometimes closes a block it never opened;
    smolagents then appends its own `</code>` and the parser sees `</code</code>`. Every removal can join its
    neighbours into a new tag (`</code</code>>`), so passes repeat until nothing changes; each one only shortens.
    """
    while (cleaned := _clean_once(text)) != text:
        text = cleaned
    return cleaned


def _clean_once(text: str) -> str:
    text = text.replace("</code</code>", "</code>")
    kept: list[str] = []
    open_block = False
    position = 0
    for match in _CODE_TAG.finditer(text):
        tag = match.group()
        kept.append(text[position : match.start()])
        if tag == "<code>":
            if not open_block:
                kept.append(tag)
            open_block = True
        elif open_block:
            kept.append(tag)
            open_block = False
        position = match.end()
    kept.append(text[position:])
    cleaned = "".join(kept)
    cleaned = _TRAILING_JUNK.sub("", cleaned)
    return cleaned.replace("</s>", "")


class AgentModel(LiteLLMModel):
    """LiteLLMModel whose `generate` streams, so every channel can show text as it comes.

    smolagents' own `stream_outputs=True` renders a Rich live panel to stdout on every delta; streaming here
    instead keeps the agent quiet and lets the run stop between two deltas.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        settings: Settings,
        on_delta: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        kwargs: dict[str, Any]
        if resolved.provider == "ollama":
            kwargs = {"api_base": settings.ollama_base_url, "api_key": "ollama", "num_ctx": settings.ollama_num_ctx}
        else:
            kwargs = {"api_base": settings.zai_base_url, "api_key": settings.zai_key}
        super().__init__(model_id=resolved.litellm_id, **kwargs)
        self.resolved = resolved
        self._on_delta = on_delta
        self._cancel = cancel or threading.Event()

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        parts: list[str] = []
        input_tokens = output_tokens = 0
        for delta in self.generate_stream(
            messages,
            stop_sequences=stop_sequences,
            response_format=response_format,
            tools_to_call_from=tools_to_call_from,
            **kwargs,
        ):
            if self._cancel.is_set():
                raise RunCancelled("run stopped")
            if delta.token_usage:
                input_tokens += delta.token_usage.input_tokens
                output_tokens += delta.token_usage.output_tokens
            if delta.content:
                parts.append(delta.content)
                if self._on_delta:
                    self._on_delta(delta.content)
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=clean_model_text("".join(parts)),
            token_usage=TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens),
        )
