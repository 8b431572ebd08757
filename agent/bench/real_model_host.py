"""The llama.cpp side of the real-model server (bench/real_model_server.py): one GGUF model loaded on demand with
the requested context and unloaded when keep_alive runs out, prompts rendered with the model's own chat template and
cut as Ollama cuts them, and generation that records what each request cost (tokens, seconds; never text)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The server's log lines keep one logger name, whichever module writes them.
logger = logging.getLogger("bench.real_model_server")

DEFAULT_NUM_CTX = 4096  # Ollama's default on a CPU or a GPU under 23 GiB
# Ollama's sampling defaults (api/types.go DefaultOptions).
DEFAULT_OPTIONS: dict[str, float] = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "repeat_penalty": 1.1}
# llama-server keeps a few tokens of the head when it must cut the middle of a prompt (n_keep).
TRUNCATE_KEEP_HEAD = 4


class BadRequest(Exception):
    """A request Ollama would refuse: (status, message) as its `{"error": ...}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def text_of(content: object) -> str:
    """A message's content as text (a list of parts keeps only the text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type", "text") == "text"
        )
    return "" if content is None else str(content)


@dataclass
class RequestRecord:
    """What one model request cost: token counts are the model's own, seconds are wall time inside the server."""

    path: str
    model: str
    status: int = 200
    stream: bool = True
    num_ctx: int = DEFAULT_NUM_CTX
    num_predict: int = -1
    stop: list[str] = field(default_factory=list)
    temperature: float | None = None
    keep_alive: object = None
    think: object = None
    messages: int = 0
    messages_dropped: int = 0
    prompt_tokens_full: int = 0  # the whole rendered prompt, before any cut
    prompt_tokens: int = 0  # what the model was given
    reused_tokens: int = 0  # prefix kept in the KV cache from the previous request
    evaluated_tokens: int = 0  # prompt tokens actually read this time
    output_tokens: int = 0
    overflow: bool = False
    truncated: bool = False
    done_reason: str = ""
    load_seconds: float = 0.0
    prompt_seconds: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    started_at: str = field(default_factory=now_iso)


class ModelHost:
    """One llama.cpp model, loaded on demand with the requested context, unloaded when keep_alive runs out."""

    def __init__(self, path: Path, name: str, threads: int | None = None, extra_buffers: bool = False) -> None:
        self.path = path
        self.name = name
        self.threads = threads or max(1, os.cpu_count() or 1)
        # llama.cpp's extra weight buffers (AMX, repacking) crashed the process (general protection fault in
        # libggml-cpu) on this project's virtual machines, whose CPUs announce AMX; off unless asked for.
        self.extra_buffers = extra_buffers
        self.lock = threading.Lock()  # one slot: requests queue, as with OLLAMA_NUM_PARALLEL=1
        self._llama: Any = None
        self._formatter: Any = None
        self._n_ctx = 0
        self._expires_at: float | None = None
        self._template = ""
        self.loads = 0
        self._stop = threading.Event()
        threading.Thread(target=self._reaper, daemon=True).start()

    # Loading -------------------------------------------------------------------------------------------------

    def ensure(self, num_ctx: int) -> float:
        """Load the model with this context (reloading when it differs); returns the seconds spent loading."""
        if self._llama is not None and self._n_ctx == num_ctx:
            return 0.0
        import llama_cpp.llama_cpp as low_level
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.unload()
        started = time.monotonic()
        defaults = low_level.llama_model_default_params

        def model_params() -> Any:
            params = defaults()
            params.use_extra_bufts = self.extra_buffers
            return params

        # Llama() reads its model parameters from this function and has no argument for use_extra_bufts.
        low_level.llama_model_default_params = model_params
        try:
            llama = Llama(
                model_path=str(self.path), n_ctx=num_ctx, n_threads=self.threads, n_batch=512, verbose=False, seed=0
            )
        finally:
            low_level.llama_model_default_params = defaults
        template = llama.metadata.get("tokenizer.chat_template") or ""
        if not template:
            raise BadRequest(500, "the model file has no chat template")
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
        )
        self._template = template
        self._llama = llama
        self._n_ctx = num_ctx
        self.loads += 1
        seconds = time.monotonic() - started
        logger.info("model_loaded", extra={"num_ctx": num_ctx, "seconds": round(seconds, 2)})
        return seconds

    def unload(self) -> None:
        if self._llama is not None:
            close = getattr(self._llama, "close", None)
            if close is not None:
                close()
            self._llama = None
            self._n_ctx = 0
            logger.info("model_unloaded")

    def touch(self, keep_alive_s: float | None) -> None:
        if keep_alive_s is not None and keep_alive_s <= 0:
            self.unload()
            self._expires_at = None
            return
        self._expires_at = None if keep_alive_s is None else time.monotonic() + keep_alive_s

    def _reaper(self) -> None:
        while not self._stop.wait(1.0):
            expires = self._expires_at
            if expires is not None and time.monotonic() > expires and self.lock.acquire(blocking=False):
                try:
                    if self._expires_at is not None and time.monotonic() > self._expires_at:
                        self.unload()
                        self._expires_at = None
                finally:
                    self.lock.release()

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    @property
    def template(self) -> str:
        return self._template

    # Prompt --------------------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        add_bos = bool(self._llama._model.add_bos_token())
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def render(self, messages: list[dict[str, Any]]) -> list[int]:
        clean = [{"role": str(m.get("role", "user")), "content": text_of(m.get("content"))} for m in messages]
        return self.tokenize(self._formatter(messages=clean).prompt)

    def fit_chat(self, messages: list[dict[str, Any]], num_ctx: int, record: RequestRecord) -> list[int]:
        """Ollama's chatPrompt: the longest tail of messages (plus the system messages before it) that fits."""
        full = self.render(messages)
        record.prompt_tokens_full = len(full)
        chosen, kept = full, len(messages)
        if len(full) > num_ctx:
            chosen, kept = self.render(messages[-1:]), 1
            for start in range(len(messages) - 2, -1, -1):
                systems = [m for m in messages[:start] if m.get("role") == "system"]
                candidate = self.render(systems + messages[start:])
                if len(candidate) > num_ctx:
                    break
                chosen, kept = candidate, len(messages) - start
            dropped = [m for m in messages[: len(messages) - kept] if m.get("role") != "system"]
            record.messages_dropped = len(dropped)
        return self.fit_tokens(chosen, num_ctx, record)

    def fit_tokens(self, tokens: list[int], num_ctx: int, record: RequestRecord) -> list[int]:
        """llama-server's last resort: keep the head and about half the context from the tail."""
        if len(tokens) >= num_ctx:
            tokens = tokens[:TRUNCATE_KEEP_HEAD] + tokens[-(num_ctx // 2) :]
            record.truncated = True
        record.overflow = record.truncated or record.messages_dropped > 0
        record.prompt_tokens = len(tokens)
        return tokens

    # Generation ----------------------------------------------------------------------------------------------

    def complete(self, tokens: list[int], options: dict[str, Any], record: RequestRecord) -> Generator[str, None, None]:
        """Text pieces of the answer; fills the record's counts and seconds as it goes."""
        from llama_cpp import Llama

        llama = self._llama
        cached = Llama.longest_token_prefix(llama._input_ids.tolist(), tokens)
        # llama.cpp re-reads at least the last prompt token to get fresh logits.
        record.reused_tokens = min(cached, len(tokens) - 1)
        record.evaluated_tokens = len(tokens) - record.reused_tokens
        num_predict = int(options.get("num_predict", -1) or -1)
        record.num_predict = num_predict
        stop = options.get("stop") or []
        record.stop = [str(s) for s in (stop if isinstance(stop, list) else [stop])]
        temperature = float(options.get("temperature", DEFAULT_OPTIONS["temperature"]))
        record.temperature = temperature
        seed = options.get("seed")
        started = time.monotonic()
        pieces: list[str] = []
        finish = "stop"
        stream = llama.create_completion(
            prompt=tokens,
            max_tokens=num_predict if num_predict > 0 else None,
            temperature=temperature,
            top_k=int(options.get("top_k", DEFAULT_OPTIONS["top_k"])),
            top_p=float(options.get("top_p", DEFAULT_OPTIONS["top_p"])),
            min_p=float(options.get("min_p", DEFAULT_OPTIONS["min_p"])),
            repeat_penalty=float(options.get("repeat_penalty", DEFAULT_OPTIONS["repeat_penalty"])),
            stop=record.stop,
            seed=int(seed) if seed is not None else None,
            stream=True,
        )
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                if not record.prompt_seconds:
                    record.prompt_seconds = time.monotonic() - started
                text = choice.get("text") or ""
                if text:
                    pieces.append(text)
                    yield text
                if choice.get("finish_reason"):
                    finish = str(choice["finish_reason"])
        finally:
            output = "".join(pieces)
            record.output_tokens = (
                len(llama.tokenize(output.encode("utf-8"), add_bos=False, special=True)) if output else 0
            )
            record.done_reason = "length" if finish == "length" else "stop"
