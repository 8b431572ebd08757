"""The model-side cost of the fake Ollama: what a qwen3 model on the owner's machine would read, write and spend.

Everything here follows Ollama's own behaviour (server/routes.go, server/prompt.go, llama-server's prompt cache):
- the prompt is rendered like Qwen's chat template and counted with Qwen's real BPE (tests/fakes/tokens.py);
- when it does not fit `num_ctx`, whole messages are dropped oldest first, system messages kept, the last kept;
- one KV-cache slot per model: only the tokens after the prefix shared with the previous prompt are evaluated;
- a model is loaded on demand, reloaded when `num_ctx` changes, and unloaded `keep_alive` after its last request;
- time is simulated: a clock that advances by each request's seconds (load + prompt + output at the profile's rates).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.fakes.scripted import apply_stop
from tests.fakes.tokens import qwen_encoding

DEFAULT_NUM_CTX = 4096  # Ollama's default on a CPU and under 23 GiB of VRAM
DEFAULT_KEEP_ALIVE_S = 300.0
IMAGE_PATCH = 28  # qwen3-vl: one token per 28×28 pixels after merging
MIN_IMAGE_TOKENS = 64
IM_START, IM_END = 151644, 151645  # Qwen's special tokens <|im_start|> and <|im_end|>

DEFAULT_THINKING = (
    "Okay, the owner sent a new message and I need to work out what they actually want before I answer. "
    "Let me reread the task carefully. The current message is at the end, after the earlier conversation, "
    "which is only there for context, so I should not answer those older questions again. "
    "Do I need a tool here? If the answer depends on fresh facts, a web search would help, but for a simple "
    "request I can reply directly. I should keep the reply short and in the owner's language, and make sure "
    "the code I write only calls final_answer with the text, with no extra prints or imports. "
    "Also I must not invent details that the message does not contain. Let me write the thought, "
    "then one code block that gives the final answer, and stop there."
)


class SimError(ValueError):
    """A request Ollama itself refuses with HTTP 400; the message is Ollama's own wording."""


@dataclass(frozen=True)
class Profile:
    name: str
    load_s: float
    prompt_tps: float  # prompt tokens evaluated per second
    output_tps: float  # tokens written per second


PROFILES = {
    "cpu": Profile("cpu", load_s=8.0, prompt_tps=50.0, output_tps=8.0),
    "gpu": Profile("gpu", load_s=3.0, prompt_tps=1500.0, output_tps=50.0),
}


def profile_named(name: object) -> Profile:
    if not isinstance(name, str) or name not in PROFILES:
        raise SimError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    return PROFILES[name]


def can_think(model: str) -> bool:
    """qwen3 (and qwen3-vl) tags think; their -instruct and coder variants do not, as in Ollama's capabilities."""
    name = model.lower()
    return name.startswith(("qwen3", "deepseek-r1")) and "instruct" not in name and "coder" not in name


def wants_thinking(model: str, think: object) -> bool:
    """Ollama sets think=true when the request does not say and the model can; true to a non-thinker is a 400."""
    if think is None:
        return can_think(model)
    asked = think is not False and think not in ("", "false", "none")
    if asked and not can_think(model):
        raise SimError(f'"{model}" does not support thinking')
    return asked


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def _go_duration(text: str) -> float:
    """time.ParseDuration: "30m", "1h30m", "-1s", "0"; a bare number other than 0 has a missing unit."""
    rest = text
    sign = 1.0
    if rest[:1] in "+-" and rest:
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise SimError(f'time: invalid duration "{text}"')
    total, position = 0.0, 0
    while position < len(rest):
        match = _GO_PART.match(rest, position)
        if not match:
            if re.fullmatch(r"\d+(?:\.\d*)?", rest[position:]):
                raise SimError(f'time: missing unit in duration "{text}"')
            raise SimError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    return sign * total


def parse_keep_alive(value: object) -> float | None:
    """Seconds the model stays loaded after this request; None = never unload. Raises SimError as Ollama's 400."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise SimError("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        return None if value < 0 else float(value)
    if isinstance(value, str):
        seconds = _go_duration(value)
        return None if seconds < 0 else seconds
    raise SimError(f"Unsupported type: '{type(value).__name__}'")


def image_tokens(encoded: str) -> int:
    """ceil(w/28) × ceil(h/28) of the decoded image, at least 64; an undecodable image counts the minimum."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=False))) as image:
            width, height = image.size
    except (OSError, ValueError, binascii.Error):
        return MIN_IMAGE_TOKENS
    return max(MIN_IMAGE_TOKENS, math.ceil(width / IMAGE_PATCH) * math.ceil(height / IMAGE_PATCH))


def encode(text: str) -> list[int]:
    return qwen_encoding().encode(text, disallowed_special=())


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


@dataclass
class Rendered:
    """A message as the model reads it: `<|im_start|>{role}\\n[image tokens]{content}<|im_end|>\\n`."""

    message: dict[str, Any]
    tokens: list[int]
    image_tokens: int


def render_message(message: dict[str, Any]) -> Rendered:
    images: list[int] = []
    count = 0
    for encoded in message.get("images") or []:
        n = image_tokens(str(encoded))
        # Stand-in token ids that are equal for equal images, so that an image already read stays cached.
        marker = -1 - int.from_bytes(hashlib.sha256(str(encoded).encode()).digest()[:6], "big")
        images.extend([marker] * n)
        count += n
    role = str(message.get("role", "user"))
    body = encode(f"{role}\n") + images + encode(message_text(message))
    return Rendered(message, [IM_START, *body, IM_END, *encode("\n")], count)


ASSISTANT_PROMPT = [IM_START, *encode("assistant\n")]


def fit_messages(rendered: list[Rendered], num_ctx: int) -> tuple[list[Rendered], int]:
    """Ollama's chatPrompt: the smallest start i whose system(msgs[:i]) + msgs[i:] fits; the last always stays.

    Returns the messages kept and how many were dropped (the system messages put back are not counted).
    """

    def kept(start: int) -> list[Rendered]:
        return [r for r in rendered[:start] if r.message.get("role") == "system"] + rendered[start:]

    last = len(rendered) - 1
    for start in range(0, last + 1):
        messages = kept(start)
        if sum(len(r.tokens) for r in messages) + len(ASSISTANT_PROMPT) <= num_ctx or start == last:
            return messages, len(rendered) - len(messages)
    return kept(0), 0  # no messages at all


@dataclass
class Output:
    thinking: str
    content: str
    done_reason: str  # "stop" or "length"
    thinking_tokens: int
    content_tokens: int


def write_output(thinking: str, content: str, stops: list[str], num_predict: int) -> Output:
    """Stop sequences match the raw output, thinking included; then num_predict caps thinking + content."""
    cut_thinking = apply_stop(thinking, stops)
    if cut_thinking != thinking:
        thinking, content = cut_thinking, ""
    else:
        content = apply_stop(content, stops)
    thinking_ids, content_ids = encode(thinking), encode(content)
    reason = "stop"
    if len(thinking_ids) + len(content_ids) > num_predict:
        reason = "length"
        thinking_ids = thinking_ids[:num_predict]
        content_ids = content_ids[: num_predict - len(thinking_ids)]
        decode = qwen_encoding().decode
        thinking, content = decode(thinking_ids), decode(content_ids)
    return Output(thinking, content, reason, len(thinking_ids), len(content_ids))


@dataclass
class SimRecord:
    """What one request cost; recorded as `_sim` next to the request and summed in /_fake/stats."""

    model: str = ""
    profile: str = ""
    num_ctx: int = 0
    think: bool = False
    keep_alive: float | None = DEFAULT_KEEP_ALIVE_S  # seconds; None = never unloads
    prompt_tokens: int = 0  # the whole prompt after truncation (image tokens included)
    prompt_tokens_before_truncation: int = 0
    cached_tokens: int = 0
    evaluated_tokens: int = 0
    image_tokens: int = 0
    thinking_tokens: int = 0
    content_tokens: int = 0
    output_tokens: int = 0  # every written token, thinking included (= eval_count)
    loaded: bool = False
    truncated_messages: int = 0
    done_reason: str = ""
    load_s: float = 0.0
    prompt_s: float = 0.0
    output_s: float = 0.0
    sim_seconds: float = 0.0
    clock_s: float = 0.0  # the simulated clock once this request ended
    status: int = 200

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def durations_ns(self) -> dict[str, int]:
        return {
            "total_duration": round(self.sim_seconds * 1e9),
            "load_duration": round(self.load_s * 1e9),
            "prompt_eval_count": self.evaluated_tokens,
            "prompt_eval_duration": round(self.prompt_s * 1e9),
            "eval_count": self.output_tokens,
            "eval_duration": round(self.output_s * 1e9),
        }


@dataclass
class Slot:
    """A loaded model: its context size, when it unloads (None = never) and the prompt in its KV cache."""

    num_ctx: int
    expires_at: float | None
    cache: list[int] = field(default_factory=list)


# What /_fake/stats sums over the requests: a SimRecord's counts, then its simulated seconds.
COUNT_KEYS = (
    "prompt_tokens",
    "cached_tokens",
    "evaluated_tokens",
    "image_tokens",
    "thinking_tokens",
    "output_tokens",
    "truncated_messages",
)
STAT_KEYS = (*COUNT_KEYS, "load_s", "prompt_s", "output_s", "sim_seconds")


class Simulator:
    """The model side of one Ollama server: a simulated clock, loaded models and their caches, running totals."""

    def __init__(self, profile: str = "cpu", default_num_ctx: int = DEFAULT_NUM_CTX) -> None:
        self.initial_profile = profile_named(profile)
        self.default_num_ctx = default_num_ctx
        self.lock = threading.Lock()  # one request at a time, as with OLLAMA_NUM_PARALLEL=1
        self.reset()

    def reset(self) -> None:
        self.profile = self.initial_profile
        self.now = 0.0
        self.slots: dict[str, Slot] = {}
        self.totals: dict[str, float] = dict.fromkeys(STAT_KEYS, 0.0)
        self.counts = {"requests": 0, "errors": 0, "loads": 0, "truncated_requests": 0, "length_cut": 0}

    def advance(self, seconds: float) -> float:
        with self.lock:
            self.now += max(0.0, seconds)
            return self.now

    def num_ctx(self, options: dict[str, Any]) -> int:
        value = options.get("num_ctx")
        return int(value) if isinstance(value, int | float) and value > 0 else self.default_num_ctx

    def _slot(self, model: str, num_ctx: int, record: SimRecord) -> Slot:
        """The model's slot, loading it (and paying the load) when absent, expired or at another num_ctx."""
        slot = self.slots.get(model)
        expired = slot is not None and slot.expires_at is not None and self.now >= slot.expires_at
        if slot is None or expired or slot.num_ctx != num_ctx:
            slot = Slot(num_ctx, None)
            self.slots[model] = slot
            record.loaded = True
            record.load_s = self.profile.load_s
            self.counts["loads"] += 1
        return slot

    def _finish(self, model: str, slot: Slot, record: SimRecord) -> None:
        record.sim_seconds = record.load_s + record.prompt_s + record.output_s
        self.now += record.sim_seconds
        record.clock_s = self.now
        if record.keep_alive == 0:
            self.slots.pop(model, None)
        else:
            slot.expires_at = None if record.keep_alive is None else self.now + record.keep_alive
        self.counts["requests"] += 1
        self.counts["truncated_requests"] += record.truncated_messages > 0
        self.counts["length_cut"] += record.done_reason == "length"
        for key in STAT_KEYS:
            self.totals[key] += float(getattr(record, key))

    def load_only(self, model: str, options: dict[str, Any], keep_alive: float | None) -> SimRecord:
        """An /api/chat with no messages (or /api/generate with no prompt): load, or unload when keep_alive is 0."""
        with self.lock:
            record = SimRecord(model, self.profile.name, self.num_ctx(options), False, keep_alive)
            if keep_alive == 0:
                self.slots.pop(model, None)
                record.done_reason = "unload"
                record.clock_s = self.now
                self.counts["requests"] += 1
                return record
            slot = self._slot(model, record.num_ctx, record)
            record.done_reason = "load"
            self._finish(model, slot, record)
            return record

    def run(
        self,
        model: str,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        keep_alive: float | None,
        think: bool,
        answer: Callable[[list[dict[str, Any]]], tuple[str, str]],
    ) -> tuple[SimRecord, Output]:
        """One generation: its cost and what was written. `answer` gets the messages the model actually read
        (after truncation) and returns the (thinking, content) the model would write without limits."""
        with self.lock:
            num_ctx = self.num_ctx(options)
            record = SimRecord(model, self.profile.name, num_ctx, think, keep_alive)
            rendered = [render_message(m) for m in messages]
            kept, dropped = fit_messages(rendered, num_ctx)
            prompt = [token for r in kept for token in r.tokens] + ASSISTANT_PROMPT
            record.prompt_tokens = len(prompt)
            record.prompt_tokens_before_truncation = sum(len(r.tokens) for r in rendered) + len(ASSISTANT_PROMPT)
            record.truncated_messages = dropped
            record.image_tokens = sum(r.image_tokens for r in kept)

            thinking, content = answer([r.message for r in kept])
            slot = self._slot(model, num_ctx, record)
            common = 0
            for cached, token in zip(slot.cache, prompt, strict=False):
                if cached != token:
                    break
                common += 1
            # llama-server always re-reads at least the last prompt token to get its logits.
            record.cached_tokens = min(common, len(prompt) - 1)
            record.evaluated_tokens = len(prompt) - record.cached_tokens
            slot.cache = prompt

            predict = options.get("num_predict")
            limit = int(predict) if isinstance(predict, int | float) and predict >= 0 else 10 * num_ctx
            output = write_output(thinking if think else "", content, list(options.get("stop") or []), limit)
            record.thinking_tokens = output.thinking_tokens
            record.content_tokens = output.content_tokens
            record.output_tokens = output.thinking_tokens + output.content_tokens
            record.done_reason = output.done_reason
            record.prompt_s = record.evaluated_tokens / self.profile.prompt_tps
            record.output_s = record.output_tokens / self.profile.output_tps
            self._finish(model, slot, record)
            return record, output

    def failed(self) -> None:
        with self.lock:
            self.counts["errors"] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            loaded = {
                model: {
                    "num_ctx": slot.num_ctx,
                    "cached_tokens": len(slot.cache),
                    "expires_in_s": None if slot.expires_at is None else round(slot.expires_at - self.now, 3),
                }
                for model, slot in self.slots.items()
                if slot.expires_at is None or slot.expires_at > self.now
            }
            return {
                "profile": self.profile.name,
                "clock_s": self.now,
                **self.counts,
                **self.totals,
                "loaded_models": loaded,
            }
