"""Ask a local Ollama vision model about an image file (a screenshot, a received photo, ...)."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from smolagents import Tool

from tools.common import log_outcome
from tools.paths import PathRefusedError, resolve_inside

logger = logging.getLogger(__name__)

DEFAULT_QUESTION = "Describe this image in detail, including any text you can read."


class AnalyzeImageTool(Tool):
    name = "analyze_image"
    description = """Look at an image file with a local vision model and answer a question about it.
Use it on screenshots (from the screenshot tool), photos the owner sent, or images in the allowed folders.
Ask a precise question; the answer is text. To find where to click, ask for pixel coordinates,
but double-check them: vision models estimate positions roughly.
Examples:
  analyze_image(image_path="/home/me/data/screenshots/screenshot_20261121_101500_123456.png",
                question="Which windows are open? Is there an error dialog?")
  analyze_image(image_path="photos/receipt.jpg", question="What is the total amount and the date?")
Answers starting with "ERROR:" explain what failed and what to do."""
    inputs = {
        "image_path": {"type": "string", "description": "Path of the image file (PNG, JPEG, WebP...)."},
        "question": {
            "type": "string",
            "description": "What to find out about the image. Default: a detailed description.",
            "nullable": True,
        },
    }
    output_type = "string"

    def __init__(
        self,
        ollama_base_url: str,
        resolve_vision_model: Callable[[], str],
        readable_dirs: list[Path],
        timeout_s: float = 180,
        max_image_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        super().__init__()
        if not readable_dirs:
            raise ValueError("AnalyzeImageTool needs at least one readable folder")
        self.ollama_base_url = ollama_base_url.rstrip("/")
        self.resolve_vision_model = resolve_vision_model
        self.readable_dirs = [Path(d) for d in readable_dirs]
        self.timeout_s = timeout_s
        self.max_image_bytes = max_image_bytes

    def forward(self, image_path: str, question: str | None = None) -> str:
        started = time.monotonic()
        return log_outcome(logger, self.name, started, self._analyze(image_path, question or DEFAULT_QUESTION))

    def _analyze(self, image_path: str, question: str) -> str:
        try:
            path = resolve_inside(image_path, self.readable_dirs)
        except PathRefusedError as exc:
            return str(exc)
        if not path.is_file():
            return (
                f"ERROR: {path} is not an existing file. Take a screenshot first, or list the folder to find the image."
            )
        size = path.stat().st_size
        if size > self.max_image_bytes:
            return f"ERROR: {path} is {size} bytes, over the {self.max_image_bytes}-byte limit. Take a smaller screenshot region instead."
        try:
            model = self.resolve_vision_model()
        except Exception as exc:  # the resolver's message is the explanation
            return f"ERROR: no vision model available: {exc}"
        payload = {
            "model": model,
            "prompt": question,
            # Ollama wants plain base64 here; a data: URL prefix makes it reject the image.
            "images": [base64.b64encode(path.read_bytes()).decode("ascii")],
            "stream": False,
        }
        try:
            response = httpx.post(
                f"{self.ollama_base_url}/api/generate",
                json=payload,
                timeout=httpx.Timeout(self.timeout_s, connect=5),
            )
        except httpx.ConnectError:
            return (
                f"ERROR: Ollama is not reachable at {self.ollama_base_url}, so images cannot be analysed. "
                "Tell the owner to start it with `ollama serve` (or fix OLLAMA_BASE_URL)."
            )
        except httpx.TimeoutException:
            return (
                f"ERROR: the vision model '{model}' did not answer within {self.timeout_s:g} s. "
                "Try a smaller image (a screenshot region) or a simpler question."
            )
        except httpx.HTTPError as exc:
            return f"ERROR: request to Ollama failed ({type(exc).__name__}). Try again once."
        return _interpret(response, model)


def _interpret(response: httpx.Response, model: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 404 and "model" in str(body.get("error", "")):
        return f"ERROR: vision model '{model}' is not installed in Ollama. Tell the owner to run `ollama pull {model}`."
    if response.status_code == 404:
        return f"ERROR: {response.request.url} does not exist: OLLAMA_BASE_URL does not point at Ollama. Tell the owner to fix it."
    if response.status_code != 200:
        detail = body.get("error") or f"HTTP {response.status_code}"
        return f"ERROR: Ollama could not analyse the image with '{model}': {detail}. Is it a valid image file?"
    answer = body.get("response")
    if not isinstance(answer, str) or not answer.strip():
        return f"ERROR: the vision model '{model}' returned an empty answer. Ask a more specific question."
    return answer.strip()
