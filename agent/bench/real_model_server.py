"""A real small model behind the parts of Ollama's HTTP API that the agent uses, for `make bench`.

One GGUF file runs through llama-cpp-python (one `Llama` instance, one request at a time, like Ollama's single
slot, so llama.cpp reuses the KV cache of the prefix shared with the previous request). Spoken here:

- `GET /api/tags`, `GET /api/ps`, `GET /api/version`, `POST /api/show` (404 for another model name);
- `POST /api/chat`, NDJSON stream by default (`message.content` pieces, then a `done: true` line with
  `done_reason`, `prompt_eval_count`, `eval_count` and durations in nanoseconds) or one JSON body with
  `stream: false`; `POST /api/generate` likewise (`response` instead of `message`);
- `options.num_ctx` (default 4096 as Ollama on a CPU; another value reloads the model, as Ollama does),
  `options.num_predict` (-1: until the context is full), `options.stop`, `options.temperature`, `top_k`, `top_p`,
  `min_p`, `repeat_penalty`, `seed`; `keep_alive` (seconds, negative for ever, or a duration such as "30m"; a numeric
  string is a 400 as in Ollama; 0 unloads after the request); `think` (this model cannot think: `think: true` or a
  level is a 400 "... does not support thinking", `false` is accepted); an empty `messages`/`prompt` only loads
  (or, with `keep_alive: 0`, unloads) the model, `done_reason` "load"/"unload".

Messages are rendered with the model's own chat template (the GGUF's `tokenizer.chat_template`) and counted with its
own tokenizer. A prompt longer than `num_ctx` is cut as Ollama cuts it (oldest non-system messages dropped, system
messages kept, the last message always kept; if that is still too long, the head and tail of the tokens are kept),
and the request is recorded with `overflow: true`.

Every request is recorded (metadata only: token counts, seconds, options; no text) and `GET /_bench/requests`
returns the list; `GET /_bench/status` says how many model requests are under way; `POST /_bench/reset` empties
the list.

Run alone: `python -m bench.real_model_server --model path/to/model.gguf --name smollm2:135m --port 0`; it prints
`READY <port>` once it listens.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes.ollama_sim import SimError
from tests.fakes.ollama_sim import parse_keep_alive as sim_keep_alive
from tests.fakes.scripted import FakeHandler

logger = logging.getLogger("bench.real_model_server")

DEFAULT_NAME = "smollm2:135m"
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


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def parse_keep_alive(value: object) -> float | None:
    """Seconds a model stays loaded after a request, None for ever: the fake Ollama's reading of Ollama's rules."""
    try:
        return sim_keep_alive(value)
    except SimError as exc:
        raise BadRequest(400, str(exc)) from exc


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
    started_at: str = field(default_factory=_now)


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


@dataclass
class ServerState:
    host: ModelHost
    records: list[RequestRecord] = field(default_factory=list)
    digest: str = ""
    size: int = 0
    active: int = 0  # model requests received and not yet answered (queued or running)
    counter_lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, delta: int) -> None:
        with self.counter_lock:
            self.active += delta


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest(400, "options must be an object")
    return options


def _num_ctx(options: dict[str, Any]) -> int:
    value = int(options.get("num_ctx") or DEFAULT_NUM_CTX)
    return max(value, 512)


def _check_think(body: dict[str, Any], name: str) -> None:
    think = body.get("think")
    if think not in (None, False, "", "false"):
        raise BadRequest(400, f'"{name}" does not support thinking')


class Handler(FakeHandler):
    """Ollama's routes over the fakes' HTTP plumbing (JSON bodies, chunked NDJSON, quiet log)."""

    server: RealModelServer  # type: ignore[assignment]

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise BadRequest(400, "invalid JSON body") from exc
        if not isinstance(body, dict):
            raise BadRequest(400, "the body must be a JSON object")
        return body

    def _line(self, payload: dict[str, Any]) -> None:
        self.write_chunk(json.dumps(payload).encode() + b"\n")

    # Routes --------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        state = self.server.state
        host = state.host
        if self.path == "/api/tags":
            self.send_json(200, {"models": [self._model_entry()]})
        elif self.path == "/api/ps":
            self.send_json(200, {"models": [self._model_entry()] if host.loaded else []})
        elif self.path in ("/", "/api/version"):
            self.send_json(200, {"version": "0.33.0"})
        elif self.path == "/_bench/requests":
            self.send_json(200, [asdict(r) for r in state.records])
        elif self.path == "/_bench/status":
            self.send_json(200, {"active": state.active, "requests": len(state.records), "loaded": host.loaded})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            body = self._read_json()
            if self.path == "/_bench/reset":
                self.server.state.records.clear()
                self.send_json(200, {"ok": True})
            elif self.path == "/api/show":
                self._show(body)
            elif self.path == "/api/chat":
                self._run(body, chat=True)
            elif self.path == "/api/generate":
                self._run(body, chat=False)
            else:
                self.send_json(404, {"error": "not found"})
        except BadRequest as exc:
            self.send_json(exc.status, {"error": exc.message})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _model_entry(self) -> dict[str, Any]:
        state = self.server.state
        return {
            "name": state.host.name,
            "model": state.host.name,
            "modified_at": _now(),
            "size": state.size,
            "digest": state.digest,
            "details": {
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "135M",
                "quantization_level": "Q4_1",
            },
        }

    def _show(self, body: dict[str, Any]) -> None:
        host = self.server.state.host
        name = body.get("model") or body.get("name") or ""
        if name != host.name:
            raise BadRequest(404, f"model '{name}' not found")
        self.send_json(
            200,
            {
                "modelfile": f"FROM {host.path.name}",
                "parameters": "",
                "template": host.template,
                "details": self._model_entry()["details"],
                "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
                "capabilities": ["completion"],
            },
        )

    def _run(self, body: dict[str, Any], chat: bool) -> None:
        state = self.server.state
        host = state.host
        name = str(body.get("model") or "")
        record = RequestRecord(path=self.path, model=name, stream=bool(body.get("stream", True)))
        record.keep_alive, record.think = body.get("keep_alive"), body.get("think")
        started = time.monotonic()
        state.enter(1)
        try:
            if name != host.name:
                raise BadRequest(404, f"model '{name}' not found")
            options = _options(body)
            keep_alive_s = parse_keep_alive(body.get("keep_alive"))
            _check_think(body, name)
            record.num_ctx = _num_ctx(options)
            messages = body.get("messages") if chat else None
            if chat and not isinstance(messages, list):
                messages = []
            record.messages = len(messages or [])
            with host.lock:
                self._serve(body, chat, options, keep_alive_s, messages or [], record, started)
        except BadRequest as exc:
            record.status, record.error = exc.status, exc.message
            raise
        except Exception as exc:  # llama.cpp's failures: an Ollama-like 500 before streaming began
            record.status, record.error = 500, type(exc).__name__
            logger.exception("request_failed")
            raise BadRequest(500, f"{type(exc).__name__}: {exc}") from exc
        finally:
            record.seconds = round(time.monotonic() - started, 3)
            state.records.append(record)
            state.enter(-1)

    def _serve(
        self,
        body: dict[str, Any],
        chat: bool,
        options: dict[str, Any],
        keep_alive_s: float | None,
        messages: list[dict[str, Any]],
        record: RequestRecord,
        started: float,
    ) -> None:
        host = self.server.state.host
        prompt = "" if chat else str(body.get("prompt") or "")
        if (chat and not messages) or (not chat and not prompt):
            # Ollama's load/unload request.
            if keep_alive_s is not None and keep_alive_s <= 0:
                host.unload()
                record.done_reason = "unload"
            else:
                record.load_seconds = round(host.ensure(record.num_ctx), 3)
                host.touch(keep_alive_s)
                record.done_reason = "load"
            self._send_done(chat, record, started, stream_lines=False)
            return
        record.load_seconds = round(host.ensure(record.num_ctx), 3)
        if chat:
            tokens = host.fit_chat(messages, record.num_ctx, record)
        else:
            turn = []
            if body.get("system"):
                turn.append({"role": "system", "content": str(body["system"])})
            turn.append({"role": "user", "content": prompt})
            tokens = host.tokenize(prompt) if body.get("raw") else host.render(turn)
            record.prompt_tokens_full = len(tokens)
            tokens = host.fit_tokens(tokens, record.num_ctx, record)
        pieces = host.complete(tokens, options, record)
        if not record.stream:
            text = "".join(pieces)
            host.touch(keep_alive_s)
            self._send_done(chat, record, started, stream_lines=False, text=text)
            return
        self.start_stream("application/x-ndjson")
        try:
            try:
                for piece in pieces:
                    content = {"message": {"role": "assistant", "content": piece}} if chat else {"response": piece}
                    self._line({"model": record.model, "created_at": _now(), **content, "done": False})
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:  # after the 200, Ollama reports a failure as an NDJSON error line
                record.status, record.error = 500, type(exc).__name__
                logger.exception("generation_failed")
                self._line({"error": f"{type(exc).__name__}: {exc}"})
            else:
                self._send_done(chat, record, started, stream_lines=True)
            self.end_stream()
        except (BrokenPipeError, ConnectionResetError):
            # The agent closes the stream once it has a complete code block: the model stops writing.
            record.error = "client_closed"
            self.close_connection = True
            pieces.close()
        finally:
            host.touch(keep_alive_s)

    def _send_done(
        self,
        chat: bool,
        record: RequestRecord,
        started: float,
        stream_lines: bool,
        text: str = "",
    ) -> None:
        total = time.monotonic() - started
        content = {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
        done: dict[str, Any] = {
            "model": record.model,
            "created_at": _now(),
            **content,
            "done": True,
            "done_reason": record.done_reason,
            "total_duration": int(total * 1e9),
            "load_duration": int(record.load_seconds * 1e9),
        }
        if record.done_reason not in ("load", "unload"):
            done.update(
                prompt_eval_count=record.prompt_tokens,
                prompt_eval_duration=int(record.prompt_seconds * 1e9),
                eval_count=record.output_tokens,
                eval_duration=int(max(0.0, total - record.load_seconds - record.prompt_seconds) * 1e9),
            )
        if stream_lines:
            self._line(done)
        else:
            self.send_json(200, done)


class RealModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: ModelHost, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = ServerState(host=host, size=host.path.stat().st_size, digest=_digest(host.path))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the GGUF file")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the model name in /api/tags")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--extra-buffers",
        action="store_true",
        help="let llama.cpp use its AMX/repacked weight buffers (faster, if safe)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    server = RealModelServer(ModelHost(args.model, args.name, args.threads, args.extra_buffers), args.port)
    sys.stdout.write(f"READY {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
