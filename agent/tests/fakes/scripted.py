"""Shared machinery of the fake model servers: a threaded HTTP server, scripted answers and a request log."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CURRENT_MARKER = "Current message from the owner:\n"


def echo_answer(prompt_text: str) -> str:
    """A valid CodeAgent answer that echoes the owner's current message (or the whole prompt when unmarked)."""
    message = prompt_text.rsplit(CURRENT_MARKER, 1)[-1].strip()
    return f"Thought: I will repeat the message.\n<code>\nfinal_answer({json.dumps('Echo: ' + message)})\n</code>"


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

    script: deque[str] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    delta_delay_s: float = 0.0
    fail_status: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    model_seconds: float = 0.0

    def next_answer(self, prompt_text: str) -> str:
        with self.lock:
            if self.script:
                return self.script.popleft()
        return echo_answer(prompt_text)

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
            with state.lock:
                state.script.extend(body.get("answers", []))
                for key in ("delay_s", "delta_delay_s", "fail_status"):
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
                state.model_seconds = 0.0
            self.send_json(200, {"ok": True})
            return True
        return False


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[FakeHandler], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.state = FakeState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeServer:
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
