"""Ollama's HTTP API over the real model (bench/real_model_host.py): the routes the agent uses, the options and
keep_alive read as Ollama reads them, NDJSON streams, and the bench's own /_bench routes for the recorded requests."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bench.real_model_host import DEFAULT_NUM_CTX, BadRequest, ModelHost, RequestRecord, now_iso
from tests.fakes.ollama_sim import SimError
from tests.fakes.ollama_sim import parse_keep_alive as sim_keep_alive
from tests.fakes.scripted import FakeHandler

if TYPE_CHECKING:
    from bench.real_model_server import RealModelServer

# The server's log lines keep one logger name, whichever module writes them.
logger = logging.getLogger("bench.real_model_server")


def parse_keep_alive(value: object) -> float | None:
    """Seconds a model stays loaded after a request, None for ever: the fake Ollama's reading of Ollama's rules."""
    try:
        return sim_keep_alive(value)
    except SimError as exc:
        raise BadRequest(400, str(exc)) from exc


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
            "modified_at": now_iso(),
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
                    self._line({"model": record.model, "created_at": now_iso(), **content, "done": False})
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
            "created_at": now_iso(),
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
