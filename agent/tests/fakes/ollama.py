"""A local stand-in for Ollama that speaks its HTTP API (/api/tags, /api/chat, /api/show, /api/generate).

Answers are scripted CodeAgent text (POST /_fake/script) or, by default, an echo of the owner's message.
Run alone with `python -m tests.fakes.ollama --port 0`: it prints `READY <port>` once it listens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.scripted import FakeHandler, FakeServer, apply_stop, chunks

DEFAULT_MODELS = ("qwen3:8b", "qwen3:4b", "qwen3-vl:2b")
VISION_ANSWER = "A red square on a white background."


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


class OllamaHandler(FakeHandler):
    server: FakeOllama

    def do_GET(self) -> None:
        if self.handle_control():
            return
        if self.path == "/api/tags":
            models = [
                {
                    "name": name,
                    "model": name,
                    "modified_at": _now(),
                    "size": 5_200_000_000,
                    "digest": "0" * 64,
                    "details": {"family": "qwen3", "parameter_size": "8.2B", "quantization_level": "Q4_K_M"},
                }
                for name in self.server.models
            ]
            self.send_json(200, {"models": models})
            return
        if self.path in ("/", "/api/version"):
            self.send_json(200, {"version": "0.13.0"})
            return
        self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.handle_control():
            return
        body = self.read_json()
        if self.path == "/api/show":
            name = body.get("model") or body.get("name") or ""
            if name not in self.server.models:
                self.send_json(404, {"error": f"model '{name}' not found"})
                return
            self.send_json(
                200,
                {
                    "modelfile": "",
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": {"family": "qwen3", "parameter_size": "8.2B"},
                    "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
                    "capabilities": ["completion", "tools"],
                },
            )
            return
        if self.path == "/api/chat":
            self._chat(body)
            return
        if self.path == "/api/generate":
            self._generate(body)
            return
        self.send_json(404, {"error": "not found"})

    def _refuse(self, body: dict[str, Any]) -> bool:
        state = self.server.state
        model = body.get("model", "")
        if model not in self.server.models:
            self.send_json(404, {"error": f"model '{model}' not found"})
            return True
        if state.fail_status:
            self.send_json(state.fail_status, {"error": "scripted failure"})
            return True
        return False

    def _chat(self, body: dict[str, Any]) -> None:
        started = time.monotonic()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self._refuse(body):
            self.server.state.record("/api/chat", body, headers)
            return
        state = self.server.state
        self.server.model_pause()
        messages = body.get("messages") or []
        options = body.get("options") or {}
        text = apply_stop(state.next_answer(_prompt_text(messages)), list(options.get("stop") or []))
        prompt_tokens = max(1, len(_prompt_text(messages)) // 4)
        eval_tokens = max(1, len(text) // 4)
        done = {
            "model": body["model"],
            "created_at": _now(),
            "done": True,
            "done_reason": "stop",
            "total_duration": 1,
            "load_duration": 1,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 1,
            "eval_count": eval_tokens,
            "eval_duration": 1,
        }
        if body.get("stream", True):
            self.start_stream("application/x-ndjson")
            for piece in chunks(text):
                if state.delta_delay_s:
                    time.sleep(state.delta_delay_s)
                line = {
                    "model": body["model"],
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
                self.write_chunk(json.dumps(line).encode() + b"\n")
            self.write_chunk(json.dumps({**done, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")
            self.end_stream()
        else:
            self.send_json(200, {**done, "message": {"role": "assistant", "content": text}})
        state.record("/api/chat", {**body, "_model_ms": (time.monotonic() - started) * 1000}, headers)

    def _generate(self, body: dict[str, Any]) -> None:
        self.server.state.record("/api/generate", body, {k.lower(): v for k, v in self.headers.items()})
        if self._refuse(body):
            return
        self.send_json(
            200,
            {
                "model": body["model"],
                "created_at": _now(),
                "response": VISION_ANSWER,
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 10,
                "eval_count": 8,
            },
        )


class FakeOllama(FakeServer):
    def __init__(self, port: int = 0, models: tuple[str, ...] = DEFAULT_MODELS) -> None:
        super().__init__(OllamaHandler, port)
        self.models = list(models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated installed models")
    args = parser.parse_args()
    server = FakeOllama(args.port, tuple(m for m in args.models.split(",") if m))
    sys.stdout.write(f"READY {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
