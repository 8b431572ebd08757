"""A local stand-in for the gateway's reminders API (`POST /api/reminders`), as schedule_message calls it.

The contract (issue 13): bearer AGENT_API_KEY; body `{"reply_to": str, "when": str, "text": str, "repeat": "cron" |
null}`; 201 `{"id", "next_run", "time_zone"}`; 4xx `{"error", "code"}` (401 wrong key, 400 invalid body). Every
request is recorded (path, body, lower-cased headers) for `GET /_fake/requests`. A scripted answer
(POST /_fake/script {"answers": [{"status": 400, "body": {...}}], "delay_s": N}) replaces the next default one.
Run alone with `python -m tests.fakes.gateway --port 0 --key KEY`: it prints `READY <port>` once it listens.
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

from tests.fakes.scripted import FakeHandler, FakeServer, serve_until_interrupted

TIME_ZONE = "Europe/Paris"
FIELDS = {"reply_to", "when", "text", "repeat"}


class GatewayHandler(FakeHandler):
    server: FakeGateway

    def do_GET(self) -> None:
        if not self.handle_control():
            self.send_json(404, {"error": "Not found.", "code": "not_found"})

    def do_POST(self) -> None:
        if self.handle_control():
            return
        body = self.read_json()
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        state.record(self.path, body, headers)
        if self.path != "/api/reminders":
            self.send_json(404, {"error": "Not found.", "code": "not_found"})
            return
        if headers.get("authorization") != f"Bearer {self.server.api_key}":
            self.send_json(401, {"error": "Wrong or missing agent key.", "code": "unauthorized"})
            return
        self.server.model_pause()  # delay_s: a gateway slower than the tool's time-out
        scripted = state.next_item()
        if isinstance(scripted, dict):
            self.send_json(int(scripted.get("status", 201)), scripted.get("body", {}))
            return
        if set(body) != FIELDS or body.get("repeat") not in (None, "cron"):
            self.send_json(400, {"error": "Invalid reminder request.", "code": "invalid_request"})
            return
        when = str(body["when"])
        next_run = "2026-12-07T09:00" if body["repeat"] == "cron" else when[:16]
        self.send_json(
            201, {"id": self.server.issue(str(body["reply_to"])), "next_run": next_run, "time_zone": TIME_ZONE}
        )

    def on_reset(self) -> None:
        with self.server.state.lock:
            self.server.issued.clear()
            self.server.ids = itertools.count(1)


class FakeGateway(FakeServer):
    def __init__(self, api_key: str, port: int = 0) -> None:
        super().__init__(GatewayHandler, port)
        self.api_key = api_key
        self.ids = itertools.count(1)
        # Each reminder's id and the chat it was set for: which answer went to which request.
        self.issued: dict[str, str] = {}

    def issue(self, reply_to: str) -> str:
        with self.state.lock:
            ident = f"r{next(self.ids):05x}"
            self.issued[ident] = reply_to
        return ident

    def reminders(self) -> list[dict[str, Any]]:
        """What POST /api/reminders received, oldest first: each {"path", "body", "headers"}."""
        with self.state.lock:
            return [dict(r) for r in self.state.requests if r["path"] == "/api/reminders"]

    def wait_for(self, count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.reminders()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.reminders()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="k" * 40)
    args = parser.parse_args()
    serve_until_interrupted(FakeGateway(args.key, args.port))


if __name__ == "__main__":
    main()
