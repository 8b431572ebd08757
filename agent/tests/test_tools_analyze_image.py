from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tools.analyze_image import AnalyzeImageTool

VISION_MODEL = "qwen3-vl:2b"


class FakeOllama:
    """Just enough of Ollama's POST /api/generate: records requests, knows one model."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = "A red square."
        self.delay_s = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                time.sleep(fake.delay_s)
                if self.path != "/api/generate":
                    self._send(404, {"error": "404 page not found"})
                elif body.get("model") != VISION_MODEL:
                    self._send(404, {"error": f"model '{body.get('model')}' not found"})
                else:
                    self._send(
                        200,
                        {
                            "model": VISION_MODEL,
                            "created_at": "2026-11-21T09:00:00Z",
                            "response": fake.answer,
                            "done": True,
                            "done_reason": "stop",
                        },
                    )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # teardown must not wait for a deliberately slow handler
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def image(allowed: Path) -> Path:
    path = allowed / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    return path


def make_tool(url: str, roots: list[Path], model: str = VISION_MODEL, **kwargs: Any) -> AnalyzeImageTool:
    return AnalyzeImageTool(url, lambda: model, readable_dirs=roots, **kwargs)


def test_analyze_image_sends_plain_base64_model_and_no_stream(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    result = make_tool(ollama.url, [allowed])(image_path="red.png", question="What colour?")
    assert result == "A red square."
    [sent] = ollama.requests
    assert sent["model"] == VISION_MODEL
    assert sent["prompt"] == "What colour?"
    assert sent["stream"] is False
    assert sent["images"] == [base64.b64encode(image.read_bytes()).decode("ascii")]
    assert not sent["images"][0].startswith("data:")


def test_analyze_image_uses_default_question(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    make_tool(ollama.url, [allowed])(image_path=str(image))
    assert ollama.requests[0]["prompt"]


def test_analyze_image_reads_from_any_readable_root(ollama: FakeOllama, tmp_path: Path, allowed: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    Image.new("RGB", (4, 4)).save(shots / "s.png")
    assert make_tool(ollama.url, [allowed, shots])(image_path=str(shots / "s.png")) == "A red square."


def test_analyze_image_refuses_files_outside_readable_roots(ollama: FakeOllama, tmp_path: Path, allowed: Path) -> None:
    outside = tmp_path / "outside" / "o.png"
    Image.new("RGB", (4, 4)).save(outside)
    result = make_tool(ollama.url, [allowed])(image_path=str(outside))
    assert result.startswith("ERROR:") and "outside" in result
    assert ollama.requests == []


def test_analyze_image_requires_existing_file(ollama: FakeOllama, allowed: Path) -> None:
    assert make_tool(ollama.url, [allowed])(image_path="missing.png").startswith("ERROR:")
    assert ollama.requests == []


def test_analyze_image_turns_resolver_failure_into_error(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    def no_vision_model() -> str:
        raise LookupError("no vision model installed: run `ollama pull qwen3-vl:2b`")

    result = AnalyzeImageTool(ollama.url, no_vision_model, readable_dirs=[allowed])(image_path=str(image))
    assert result.startswith("ERROR:") and "ollama pull qwen3-vl:2b" in result


def test_analyze_image_explains_model_not_found(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    result = make_tool(ollama.url, [allowed], model="llava:7b")(image_path=str(image))
    assert result.startswith("ERROR:") and "ollama pull llava:7b" in result


def test_analyze_image_explains_url_that_is_not_ollama(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    result = make_tool(ollama.url + "/wrong", [allowed])(image_path=str(image))
    assert result.startswith("ERROR:") and "OLLAMA_BASE_URL" in result and "ollama pull" not in result


def test_analyze_image_explains_ollama_unreachable(image: Path, allowed: Path) -> None:
    fake = FakeOllama()
    url = fake.url
    fake.server.shutdown()
    fake.server.server_close()
    result = make_tool(url, [allowed])(image_path=str(image))
    assert result.startswith("ERROR:") and "ollama serve" in result


def test_analyze_image_explains_timeout(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    ollama.delay_s = 3
    result = make_tool(ollama.url, [allowed], timeout_s=0.5)(image_path=str(image))
    assert result.startswith("ERROR:") and "did not answer within" in result


def test_analyze_image_refuses_images_over_size_limit(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    result = make_tool(ollama.url, [allowed], max_image_bytes=10)(image_path=str(image))
    assert result.startswith("ERROR:") and "limit" in result
    assert ollama.requests == []
