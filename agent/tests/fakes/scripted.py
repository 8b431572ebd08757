"""Shared machinery of the fake model servers: a threaded HTTP server, scripted answers and a request log."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

CURRENT_MARKER = "Current message from the owner:\n"


def echo_answer(prompt_text: str, fenced: bool = False) -> str:
    """A valid CodeAgent answer that echoes the owner's current message (or the whole prompt when unmarked).

    `fenced` writes the code in a ```python block instead of <code>…</code>, as models trained on Markdown do.
    """
    message = prompt_text.rsplit(CURRENT_MARKER, 1)[-1].strip()
    code = f"final_answer({json.dumps('Echo: ' + message)})"
    if fenced:
        return f"Thought: I will repeat the message.\n```python\n{code}\n```"
    return f"Thought: I will repeat the message.\n<code>\n{code}\n</code>"


def answer_text(item: Any, prompt_text: str) -> str:
    """The text of one scripted answer: a plain string as is, or an answer object (see below) rendered.

    An answer object is a dict with any of: `text` (the exact answer), `thought` (the Thought: line), `blocks` (a
    list of code blocks, e.g. a tool call then a guessed final_answer), `fences` (true: ```python blocks, false:
    <code>…</code>; default true with `blocks`, false for the echo). Without `text` or `blocks` it is the echo.
    Fake-specific keys (such as the Ollama fake's `thinking`) are ignored here.
    """
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return echo_answer(prompt_text)
    if isinstance(item.get("text"), str):
        return item["text"]
    blocks = item.get("blocks")
    if isinstance(blocks, list) and blocks:
        thought = str(item.get("thought", "I will use the tools, then answer."))
        fenced = bool(item.get("fences", True))
        opening, closing = ("```python", "```") if fenced else ("<code>", "</code>")
        body = "\n".join(f"{opening}\n{block}\n{closing}" for block in blocks)
        return f"Thought: {thought}\n{body}"
    return echo_answer(prompt_text, fenced=bool(item.get("fences", False)))


def apply_stop(text: str, stops: list[str]) -> str:
    """Cut the text at the first stop sequence, as Ollama and OpenAI-compatible servers do."""
    cut = len(text)
    for stop in stops:
        index = text.find(stop)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


def chunks(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class FakeState:
    """What the test controls: the queue of scripted answers, delays, failures; and what the fake saw."""

    script: deque[Any] = field(default_factory=deque)  # strings, or answer objects (see answer_text)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    delta_delay_s: float = 0.0
    fail_status: int | None = None
    fail_error: str | None = None  # the reason a fake gives with fail_status (its own default text when None)
    lock: threading.Lock = field(default_factory=threading.Lock)
    model_seconds: float = 0.0

    def next_answer(self, prompt_text: str) -> str:
        return answer_text(self.next_item(), prompt_text)

    def next_item(self) -> Any:
        """The next scripted answer as it was scripted (string or answer object), or None for the default."""
        with self.lock:
            if self.script:
                return self.script.popleft()
        return None

    def record(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append({"path": path, "body": body, "headers": headers})

    def add_model_time(self, seconds: float) -> None:
        with self.lock:
            self.model_seconds += seconds


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle plus delayed ACK add 40 ms per request.
    disable_nagle_algorithm = True
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def handle_control(self) -> bool:
        """The `/_fake/*` routes tests use to script the fake and read what it received."""
        state = self.server.state
        if self.path == "/_fake/requests" and self.command == "GET":
            with state.lock:
                self.send_json(200, list(state.requests))
            return True
        if self.path == "/_fake/script" and self.command == "POST":
            body = self.read_json()
            try:
                self.on_script(body)
            except ValueError as exc:
                self.send_json(400, {"error": str(exc)})
                return True
            with state.lock:
                state.script.extend(body.get("answers", []))
                for key in ("delay_s", "delta_delay_s", "fail_status", "fail_error"):
                    if key in body:
                        setattr(state, key, body[key])
            self.send_json(200, {"ok": True})
            return True
        if self.path == "/_fake/reset" and self.command == "POST":
            self.read_json()  # an unread body would be taken for the next request on this connection
            with state.lock:
                state.script.clear()
                state.requests.clear()
                state.delay_s = state.delta_delay_s = 0.0
                state.fail_status = None
                state.fail_error = None
                state.model_seconds = 0.0
            self.on_reset()
            self.send_json(200, {"ok": True})
            return True
        return False

    def on_script(self, body: dict[str, Any]) -> None:
        """A fake's own keys of POST /_fake/script, checked before anything is applied; ValueError means 400."""

    def on_reset(self) -> None:
        """A fake's own state to forget on POST /_fake/reset."""


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[FakeHandler], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.state = FakeState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def model_pause(self) -> None:
        """The scripted latency of the model, recorded so benchmarks can subtract it."""
        if self.state.delay_s:
            time.sleep(self.state.delay_s)


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """A fake run alone: `READY <port>` on stdout once it listens, then serve until Ctrl-C."""
    sys.stdout.write(f"READY {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
