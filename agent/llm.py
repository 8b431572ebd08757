"""The model the CodeAgent talks to: LiteLLM, always streamed, bounded (output cap, context budget, time), with
deltas and thinking relayed, and the model's text cut to one clean code block."""

from __future__ import annotations

import ast
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

# LiteLLM fetches a price map from the internet when imported unless told to use its bundled copy. This module is
# where the agent's LiteLLM is set up; whoever imports litellm imports this first (model_errors.py does).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from smolagents import ChatMessage, LiteLLMModel, MessageRole, Model, TokenUsage  # noqa: E402

from context import ContextBudget, content_texts  # noqa: E402
from model_router import ResolvedModel  # noqa: E402
from settings import Settings  # noqa: E402

# LiteLLM prints coloured "Give Feedback / Get Help" banners to stdout on errors; the agent's output is JSON only.
litellm.suppress_debug_info = True

_CODE_TAG = re.compile(r"</?code>")
# A complete code block: smolagents' tags, or a Markdown fence, which small models often use instead, labelled
# python, py, python3 or Python, or bare. smolagents' own fallback would read "```python3" as code starting with "3".
_BLOCK = re.compile(r"<code>(.*?)</code>|```[ \t]*((?i:python3?|py3?))?[ \t]*\n(.*?)\n[ \t]*```", re.DOTALL)
# Z.ai's context window is far larger than anything a turn sends; its budget only guards against a runaway.
CLOUD_CONTEXT_TOKENS = 128_000
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


def _first_block(text: str) -> tuple[int, str] | None:
    """Where the first complete code block starts, and its code.

    A bare fence counts only when what it holds is Python: small models also fence the output they expect.
    """
    for match in _BLOCK.finditer(text):
        if match.group(1) is not None:
            return match.start(), match.group(1)
        code = match.group(3)
        if match.group(2) is not None or _is_python(code):
            return match.start(), code
    return None


def _is_python(code: str) -> bool:
    """Python that does something (a call, an assignment, an import): "not python" parses too."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, _ACTIONS) for node in ast.walk(tree))


_ACTIONS = (ast.Call, ast.Assign, ast.AugAssign, ast.Import, ast.ImportFrom)


def first_code_block(text: str) -> str:
    """The text up to the end of its first complete code block, written as <code>…</code>.

    smolagents joins every block of a reply and runs them at once, so a `final_answer` guessed in a second block
    would run before the first block's observation came back. A reply whose block is still open (the `</code>` stop
    sequence ended it) or that has no block is left as it is.
    """
    block = _first_block(text)
    if block is None:
        return text
    start, code = block
    return f"{text[:start]}<code>\n{code.strip(chr(10))}\n</code>"


def has_complete_block(text: str) -> bool:
    return _first_block(text) is not None


def output_cap(resolved: ResolvedModel, settings: Settings) -> int:
    """The most tokens one call may write: the answer's cap and, when the model thinks, room for its thinking.

    Ollama's num_predict and Z.ai's max_tokens count the thinking too, so with the answer's cap alone a model that
    thinks at length would end with nothing written. On Ollama, all of it stays within half the context window.
    """
    if not resolved.think:
        return settings.agent_max_output_tokens
    thinking = settings.agent_max_thinking_tokens
    if resolved.provider == "ollama":
        thinking = min(thinking, max(0, settings.ollama_num_ctx // 2 - settings.agent_max_output_tokens))
    return settings.agent_max_output_tokens + thinking


def context_budget(resolved: ResolvedModel, settings: Settings) -> ContextBudget:
    """What each prompt of a run may take: the model's context window minus what one call may write."""
    window = settings.ollama_num_ctx if resolved.provider == "ollama" else CLOUD_CONTEXT_TOKENS
    return ContextBudget(window - output_cap(resolved, settings))


class ModelFactory(Protocol):
    """Builds the model one run talks to: AgentModel, or in tests a smolagents Model that replies from a script.

    The model reports its text through `on_delta`, its reasoning through `on_thinking`, and stops once `cancel` is set.
    """

    def __call__(
        self,
        resolved: ResolvedModel,
        settings: Settings,
        *,
        on_delta: Callable[[str], None],
        cancel: threading.Event,
        on_thinking: Callable[[str], None],
        budget: ContextBudget,
    ) -> Model: ...


class AgentModel(LiteLLMModel):
    """LiteLLMModel whose `generate` streams, so every channel can show text as it comes.

    Every call carries the project's bounds: `think` (off unless the owner or the `reason` category asks), Ollama's
    `keep_alive`, an output cap, a request timeout inside the turn's, no hidden retries, and a prompt shortened to
    fit the context window. Reading stops at the end of the first complete code block, which closes the stream and
    so stops the model writing.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        settings: Settings,
        on_delta: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        on_thinking: Callable[[str], None] | None = None,
        budget: ContextBudget | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "max_tokens": output_cap(resolved, settings),
            # A call may take most of the turn, never more: the owner then sees the real cause, not a generic time-out.
            "timeout": settings.agent_timeout_s,
            "num_retries": 0,
        }
        if resolved.provider == "ollama":
            kwargs |= {
                "api_base": settings.ollama_base_url,
                "api_key": "ollama",
                "num_ctx": settings.ollama_num_ctx,
                "keep_alive": settings.keep_alive,
                "think": resolved.think,
            }
        else:
            kwargs |= {
                "api_base": settings.zai_base_url,
                "api_key": settings.zai_key,
                "max_retries": 0,
                "extra_body": {"thinking": {"type": "enabled" if resolved.think else "disabled"}},
            }
        # smolagents' own retry waits 60 s, then 120 s, on a rate limit: longer than a turn may last.
        super().__init__(model_id=resolved.litellm_id, retry=False, **kwargs)
        self.resolved = resolved
        self._answer_cap = settings.agent_max_output_tokens
        # The runner's budget carries the task's shorter variants (AgentRunner._task).
        self.budget = budget if budget is not None else context_budget(resolved, settings)
        self._on_delta = on_delta
        self._on_thinking = on_thinking
        self._cancel = cancel or threading.Event()

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        # A caller may ask for a shorter reply than the run's cap (the summary when steps run out), never a longer one,
        # and for the reply to end by a time.monotonic() instant: what was written by then is the reply.
        answer_cap = kwargs.pop("max_tokens", None)
        stop_at: float | None = kwargs.pop("stop_at", None)
        completion_kwargs = self._prepare_completion_kwargs(
            messages=self.budget.fit(content_texts(messages)),
            stop_sequences=stop_sequences,
            response_format=response_format,
            tools_to_call_from=tools_to_call_from,
            model=self.model_id,
            api_base=self.api_base,
            api_key=self.api_key,
            custom_role_conversions=self.custom_role_conversions,
            convert_images_to_image_urls=True,
            **kwargs,
        )
        if isinstance(answer_cap, int):  # the thinking keeps its room
            thinking = self.kwargs["max_tokens"] - self._answer_cap
            completion_kwargs["max_tokens"] = min(completion_kwargs["max_tokens"], answer_cap + thinking)
        if stop_at is not None:  # also bounds the wait for the first token (the prompt being read)
            completion_kwargs["timeout"] = max(1.0, min(completion_kwargs["timeout"], stop_at - time.monotonic()))
        parts: list[str] = []
        input_tokens = output_tokens = 0
        stream = self.client.completion(**completion_kwargs, stream=True, stream_options={"include_usage": True})
        try:
            for event in stream:
                if self._cancel.is_set():
                    raise RunCancelled("run stopped")
                if stop_at is not None and time.monotonic() >= stop_at:
                    break
                usage = getattr(event, "usage", None)
                if usage:
                    input_tokens += usage.prompt_tokens or 0
                    output_tokens += usage.completion_tokens or 0
                if not event.choices:
                    continue
                delta = event.choices[0].delta
                thinking = getattr(delta, "reasoning_content", None)
                if thinking and self._on_thinking:
                    self._on_thinking(thinking)
                if delta.content:
                    parts.append(delta.content)
                    if self._on_delta:
                        self._on_delta(delta.content)
                    # A fence may come split across deltas ("``" then "`\n"); a tag block ends at the stop sequence.
                    if "`" in delta.content and has_complete_block("".join(parts)):
                        break
        finally:
            _close(stream)
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=first_code_block(clean_model_text("".join(parts))),
            token_usage=TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens),
        )


def _close(stream: Any) -> None:
    """Close the HTTP response under LiteLLM's stream, so a model we stopped reading stops writing.

    Ollama cancels a generation when its client goes away; otherwise it would write on to the output cap while the
    next step waits for its one slot.
    """
    for target in (getattr(stream, "completion_stream", None), stream):
        closer = getattr(target, "close", None)
        if callable(closer):
            try:
                closer()
            except Exception:  # best effort: the response is released with the objects anyway
                continue
