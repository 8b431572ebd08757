"""A local stand-in for Ollama that speaks its HTTP API (/api/tags, /api/chat, /api/show, /api/generate).

Answers are scripted CodeAgent text (POST /_fake/script) or, by default, an echo of the owner's message. The model
side is simulated as a qwen3 model on the owner's machine would behave (tests/fakes/ollama_sim.py): thinking,
`num_ctx` truncation, `num_predict`, loading and keep_alive on a simulated clock, the KV prefix cache, cpu/gpu speeds.
Run alone with `python -m tests.fakes.ollama --port 0 [--profile cpu|gpu]`: it prints `READY <port>` once it listens.

Control routes (besides POST /_fake/reset and GET /_fake/requests of every fake):
- POST /_fake/script {answers, delay_s, delta_delay_s, fail_status, fail_error, profile, fence_rate, thinking};
  an answer is a string or an object {text | blocks [+ thought, fences], thinking, stream_error}.
- POST /_fake/clock {"advance_s": N}: let simulated time pass (keep_alive expiry); answers {"clock_s"}.
- GET /_fake/stats: totals of the simulated cost since the last reset.
Each /api/chat and /api/generate record's body carries `_sim` (ollama_sim.SimRecord) and `_model_ms` (wall clock).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.ollama_sim import (
    DEFAULT_NUM_CTX,
    DEFAULT_THINKING,
    Output,
    SimError,
    SimRecord,
    Simulator,
    can_think,
    message_text,
    parse_keep_alive,
    profile_named,
    wants_thinking,
)
from tests.fakes.scripted import FakeHandler, FakeServer, answer_text, chunks, serve_until_interrupted

DEFAULT_MODELS = ("qwen3:8b", "qwen3:4b", "qwen3-vl:2b")
VISION_ANSWER = "A red square on a white background."
SCRIPTED_FAILURE = "scripted failure"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(message_text(m) for m in messages)


class OllamaHandler(FakeHandler):
    server: FakeOllama

    def do_GET(self) -> None:
        if self.handle_control():
            return
        if self.path == "/_fake/stats":
            self.send_json(200, self.server.sim.stats())
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
        if self.path == "/_fake/clock":
            advance = body.get("advance_s", 0)
            if isinstance(advance, bool) or not isinstance(advance, int | float) or advance < 0:
                self.send_json(400, {"error": "advance_s must be a number of seconds, 0 or more"})
                return
            self.send_json(200, {"clock_s": self.server.sim.advance(float(advance))})
            return
        if self.path == "/api/show":
            name = body.get("model") or body.get("name") or ""
            if name not in self.server.models:
                self.send_json(404, {"error": f"model '{name}' not found"})
                return
            capabilities = ["completion", "tools"]
            capabilities += ["thinking"] if can_think(name) else []
            capabilities += ["vision"] if "-vl" in name else []
            self.send_json(
                200,
                {
                    "modelfile": "",
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": {"family": "qwen3", "parameter_size": "8.2B"},
                    "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
                    "capabilities": capabilities,
                },
            )
            return
        if self.path == "/api/chat":
            self._complete("/api/chat", body, body.get("messages") or [])
            return
        if self.path == "/api/generate":
            messages = [{"role": "system", "content": body["system"]}] if body.get("system") else []
            if body.get("prompt") or body.get("images"):
                messages.append({"role": "user", "content": body.get("prompt") or "", "images": body.get("images")})
            self._complete("/api/generate", body, messages)
            return
        self.send_json(404, {"error": "not found"})

    # -- control -------------------------------------------------------------------------------------------------

    def on_script(self, body: dict[str, Any]) -> None:
        server = self.server
        profile = profile_named(body["profile"]) if "profile" in body else server.sim.profile
        rate = body.get("fence_rate", server.fence_rate)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError("fence_rate must be a number from 0 to 1")
        server.sim.profile = profile
        server.fence_rate = float(rate)
        if "thinking" in body:
            server.thinking = str(body["thinking"])

    def on_reset(self) -> None:
        self.server.reset_sim()

    # -- model calls ---------------------------------------------------------------------------------------------

    def _fail(self, path: str, body: dict[str, Any], headers: dict[str, str], status: int, error: str) -> None:
        self.server.sim.failed()
        self.send_json(status, {"error": error})
        record = SimRecord(model=str(body.get("model", "")), profile=self.server.sim.profile.name, status=status)
        record.done_reason = "error"
        self.server.state.record(path, {**body, "_sim": {**record.as_dict(), "error": error}}, headers)

    def _answer(self, messages: list[dict[str, Any]], path: str) -> tuple[str, str, str | None]:
        """(thinking, content, error to send after the content) of the next answer."""
        server = self.server
        if path == "/api/generate":  # the vision call: not taken from the CodeAgent's script
            return server.thinking, VISION_ANSWER, None
        if messages and messages[-1].get("role") == "system":
            # A prompt with nothing to answer yet (the agent's warm-up): it must not use up a scripted answer.
            return "", "", None
        item = server.state.next_item()
        thinking, stream_error = server.thinking, None
        if isinstance(item, dict):
            thinking = str(item.get("thinking", thinking))
            stream_error = str(item["stream_error"]) if item.get("stream_error") else None
            if not {"text", "blocks", "fences"} & item.keys():
                item = {**item, "fences": server.next_fenced()}
        elif item is None:
            item = {"fences": server.next_fenced()}
        return thinking, answer_text(item, _prompt_text(messages)), stream_error

    def _complete(self, path: str, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        headers = {k.lower(): v for k, v in self.headers.items()}
        server, state = self.server, self.server.state
        model = str(body.get("model", ""))
        options = body.get("options") or {}
        try:
            keep_alive = parse_keep_alive(body.get("keep_alive"))
            if model not in server.models:
                self._fail(path, body, headers, 404, f"model '{model}' not found")
                return
            think = wants_thinking(model, body.get("think"))
        except SimError as exc:
            self._fail(path, body, headers, 400, str(exc))
            return
        if state.fail_status:
            self._fail(path, body, headers, state.fail_status, state.fail_error or SCRIPTED_FAILURE)
            return
        if not messages:  # Ollama's "load the model" (or, with keep_alive 0, "unload") request
            record = server.sim.load_only(model, options, keep_alive)
            done = {"done": True, "done_reason": record.done_reason}
            self.send_json(200, {**self._line(path, model, "", ""), **done})
            state.record(path, {**body, "_sim": record.as_dict(), "_model_ms": 0.0}, headers)
            return
        if path == "/api/chat":
            server.model_pause()
        stream_error: list[str | None] = [None]

        def answer(kept: list[dict[str, Any]]) -> tuple[str, str]:
            thinking, content, stream_error[0] = self._answer(kept, path)
            return thinking, content

        record, output = server.sim.run(model, messages, options, keep_alive, think, answer)
        self._respond(path, body, record, output, stream_error[0])
        sim = record.as_dict()
        state.record(path, {**body, "_sim": sim, "_model_ms": (time.monotonic() - started) * 1000}, headers)

    def _line(self, path: str, model: str, thinking: str, content: str) -> dict[str, Any]:
        line: dict[str, Any] = {"model": model, "created_at": _now()}
        if path == "/api/chat":
            line["message"] = {"role": "assistant", "content": content, **({"thinking": thinking} if thinking else {})}
        else:
            line["response"] = content
            if thinking:
                line["thinking"] = thinking
        return line

    def _respond(self, path: str, body: dict[str, Any], record: SimRecord, output: Output, error: str | None) -> None:
        model = record.model
        done = {"done": True, "done_reason": record.done_reason, **record.durations_ns()}
        if not body.get("stream", True):
            self.send_json(200, {**self._line(path, model, output.thinking, output.content), **done})
            return
        self.start_stream("application/x-ndjson")
        # Thinking goes out without delta_delay_s: the scripted pace applies to the visible text only.
        for piece in chunks(output.thinking) if output.thinking else []:
            self.write_chunk(json.dumps({**self._line(path, model, piece, ""), "done": False}).encode() + b"\n")
        for piece in chunks(output.content) if output.content or not output.thinking else []:
            if self.server.state.delta_delay_s:
                time.sleep(self.server.state.delta_delay_s)
            self.write_chunk(json.dumps({**self._line(path, model, "", piece), "done": False}).encode() + b"\n")
        if error:  # a failure after streaming began: one NDJSON error line after the 200
            self.write_chunk(json.dumps({"error": error}).encode() + b"\n")
        else:
            self.write_chunk(json.dumps({**self._line(path, model, "", ""), **done}).encode() + b"\n")
        self.end_stream()


class FakeOllama(FakeServer):
    """The fake server; `profile` ("cpu" or "gpu") sets the simulated speeds, `num_ctx` Ollama's default context."""

    def __init__(
        self,
        port: int = 0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        profile: str = "cpu",
        num_ctx: int = DEFAULT_NUM_CTX,
        thinking: str = DEFAULT_THINKING,
    ) -> None:
        super().__init__(OllamaHandler, port)
        self.models = list(models)
        self.sim = Simulator(profile, num_ctx)
        self.default_thinking = thinking
        self.reset_sim()

    def reset_sim(self) -> None:
        """Back to the state at construction: clock 0, nothing loaded, no totals, no fences, default thinking."""
        self.sim.reset()
        self.fence_rate = 0.0
        self.thinking = self.default_thinking
        self._echoes = 0

    def next_fenced(self) -> bool:
        """Whether the next default answer uses ```python fences: exactly fence_rate of them, evenly spread."""
        with self.state.lock:
            n, self._echoes = self._echoes, self._echoes + 1
            return math.floor((n + 1) * self.fence_rate) > math.floor(n * self.fence_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated installed models")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu", help="simulated hardware speeds")
    parser.add_argument("--num-ctx", type=int, default=DEFAULT_NUM_CTX, help="default context when a request has none")
    args = parser.parse_args()
    server = FakeOllama(args.port, tuple(m for m in args.models.split(",") if m), args.profile, args.num_ctx)
    serve_until_interrupted(server)


if __name__ == "__main__":
    main()
