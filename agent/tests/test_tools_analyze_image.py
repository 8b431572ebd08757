from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fakes import ollama as fake_ollama
from tools.analyze_image import AnalyzeImageTool

VISION_MODEL = "qwen3-vl:2b"


class FakeOllama:
    """Just enough of Ollama's POST /api/generate: records requests, knows one model."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = "A red square."
        self.delay_s = 0.0
        self.failure: tuple[int, dict[str, Any]] | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                time.sleep(fake.delay_s)
                if fake.failure is not None:
                    self._send(*fake.failure)
                elif self.path != "/api/generate":
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
def shared_ollama() -> Iterator[fake_ollama.FakeOllama]:
    """The project's fake Ollama (tests/fakes/ollama.py), which records every request it receives."""
    server = fake_ollama.FakeOllama()
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def generate_bodies(server: fake_ollama.FakeOllama) -> list[dict[str, Any]]:
    return [r["body"] for r in server.state.requests if r.get("path") == "/api/generate"]


def recorded_bodies(server: fake_ollama.FakeOllama, count: int) -> list[dict[str, Any]]:
    """The generate requests once `count` are recorded: the fake records one after its answer is out,
    so the tool may return a moment before the record is there."""
    deadline = time.monotonic() + 5
    while len(generate_bodies(server)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return generate_bodies(server)


def sent_image(server: fake_ollama.FakeOllama) -> bytes:
    [body] = recorded_bodies(server, 1)
    [encoded] = body["images"]
    return base64.b64decode(encoded)


def save_image(path: Path, size: tuple[int, int], mode: str = "RGB", fmt: str | None = None) -> Path:
    # Half-transparent in RGBA: an encoder may drop an alpha channel that is opaque everywhere.
    Image.new(mode, size, (255, 0, 0, 128) if mode == "RGBA" else (255, 0, 0)).save(path, format=fmt)
    return path


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


def test_analyze_image_turns_thinking_off_and_sends_keep_alive(
    shared_ollama: fake_ollama.FakeOllama, image: Path, allowed: Path
) -> None:
    make_tool(shared_ollama.url, [allowed], keep_alive="10m")(image_path=str(image))
    make_tool(shared_ollama.url, [allowed], keep_alive=-1)(image_path=str(image))
    first, second = recorded_bodies(shared_ollama, 2)
    assert first["think"] is False and first["keep_alive"] == "10m"
    assert second["think"] is False and second["keep_alive"] == -1


def test_analyze_image_caps_the_answer_with_num_predict(
    shared_ollama: fake_ollama.FakeOllama, image: Path, allowed: Path
) -> None:
    # A vision model caught in a loop would otherwise write until the timeout.
    make_tool(shared_ollama.url, [allowed], max_output_tokens=300)(image_path=str(image))
    [body] = recorded_bodies(shared_ollama, 1)
    assert body["options"]["num_predict"] == 300


def test_analyze_image_downscales_large_png_keeping_aspect_and_format(
    shared_ollama: fake_ollama.FakeOllama, allowed: Path
) -> None:
    path = save_image(allowed / "wide.png", (2400, 1200))
    result = make_tool(shared_ollama.url, [allowed], max_pixels=1280)(image_path=str(path))
    assert not result.startswith("ERROR"), result
    with Image.open(io.BytesIO(sent_image(shared_ollama))) as sent:
        assert sent.format == "PNG"
        assert sent.size == (1280, 640)


def test_analyze_image_downscales_large_photo_as_jpeg(shared_ollama: fake_ollama.FakeOllama, allowed: Path) -> None:
    path = save_image(allowed / "tall.jpg", (1500, 3000))
    make_tool(shared_ollama.url, [allowed], max_pixels=1000)(image_path=str(path))
    with Image.open(io.BytesIO(sent_image(shared_ollama))) as sent:
        assert sent.format == "JPEG"
        assert sent.size == (500, 1000)


def test_analyze_image_keeps_transparency_as_png(shared_ollama: fake_ollama.FakeOllama, allowed: Path) -> None:
    path = save_image(allowed / "logo.webp", (2000, 1000), mode="RGBA", fmt="WEBP")
    make_tool(shared_ollama.url, [allowed], max_pixels=1280)(image_path=str(path))
    with Image.open(io.BytesIO(sent_image(shared_ollama))) as sent:
        assert sent.format == "PNG" and sent.mode == "RGBA"
        assert sent.size == (1280, 640)


def test_analyze_image_sends_a_small_image_unchanged(shared_ollama: fake_ollama.FakeOllama, allowed: Path) -> None:
    path = save_image(allowed / "small.jpg", (300, 200))
    make_tool(shared_ollama.url, [allowed], max_pixels=1280)(image_path=str(path))
    assert sent_image(shared_ollama) == path.read_bytes()


@pytest.mark.parametrize("content", [b"just some notes, not pixels", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_analyze_image_refuses_a_file_that_is_not_a_readable_image(
    shared_ollama: fake_ollama.FakeOllama, allowed: Path, content: bytes
) -> None:
    (allowed / "notes.png").write_bytes(content)
    result = make_tool(shared_ollama.url, [allowed])(image_path="notes.png")
    assert result.startswith("ERROR:") and "not a readable image" in result
    assert generate_bodies(shared_ollama) == []


def test_analyze_image_passes_on_the_reason_of_an_ollama_500(
    shared_ollama: fake_ollama.FakeOllama, image: Path, allowed: Path
) -> None:
    shared_ollama.state.fail_status = 500
    result = make_tool(shared_ollama.url, [allowed])(image_path=str(image))
    prefix = f"ERROR: Ollama could not run the vision model '{VISION_MODEL}': "
    assert result.startswith(prefix), result
    reason = result[len(prefix) :].split(". Do not retry")[0]
    assert reason and reason != "HTTP 500"  # the fake's own words, not just the status
    assert "smaller vision model or more free memory" in result
    assert "ollama serve" not in result


def test_analyze_image_quotes_an_out_of_memory_reason(ollama: FakeOllama, image: Path, allowed: Path) -> None:
    reason = "model requires more system memory (5.6 GiB) than is available (3.1 GiB)"
    ollama.failure = (500, {"error": reason})
    result = make_tool(ollama.url, [allowed])(image_path=str(image))
    assert result.startswith("ERROR:") and reason in result and "Tell the owner" in result
    assert "not reachable" not in result and "ollama serve" not in result
