"""A local stand-in for Z.ai's OpenAI-compatible API (`POST {base}/chat/completions`), streamed or not."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.scripted import FakeHandler, FakeServer, apply_stop, chunks


class OpenAIHandler(FakeHandler):
    server: FakeOpenAI

    def do_GET(self) -> None:
        if not self.handle_control():
            self.send_json(404, {"error": {"code": "404", "message": "not found"}})

    def do_POST(self) -> None:
        if self.handle_control():
            return
        body = self.read_json()
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.state.record(self.path, body, headers)
        if not self.path.endswith("/chat/completions"):
            self.send_json(404, {"error": {"code": "404", "message": "not found"}})
            return
        if headers.get("authorization") != f"Bearer {self.server.api_key}":
            self.send_json(401, {"error": {"code": "1000", "message": "Authentication failed"}})
            return
        state = self.server.state
        if state.fail_status:
            self.send_json(state.fail_status, {"error": {"code": "1302", "message": "rate limited"}})
            return
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        stops = body.get("stop") or []
        text = apply_stop(state.next_answer(prompt), [stops] if isinstance(stops, str) else list(stops))
        usage = {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": max(1, len(text) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {
            "id": "chatcmpl-fake",
            "created": int(time.time()),
            "model": body.get("model"),
            "object": "chat.completion",
        }
        if not body.get("stream"):
            self.send_json(
                200,
                {
                    **base,
                    "usage": usage,
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    ],
                },
            )
            return
        self.start_stream("text/event-stream")
        chunk_base = {**base, "object": "chat.completion.chunk"}
        for piece in chunks(text):
            event = {**chunk_base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}}]}
            self.write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        last: dict[str, Any] = {**chunk_base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.write_chunk(f"data: {json.dumps(last)}\n\n".encode())
        self.write_chunk(f"data: {json.dumps({**chunk_base, 'choices': [], 'usage': usage})}\n\n".encode())
        self.write_chunk(b"data: [DONE]\n\n")
        self.end_stream()


class FakeOpenAI(FakeServer):
    def __init__(self, api_key: str, port: int = 0) -> None:
        super().__init__(OpenAIHandler, port)
        self.api_key = api_key
