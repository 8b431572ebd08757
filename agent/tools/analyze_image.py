"""Ask a local Ollama vision model about an image file (a screenshot, a received photo, ...)."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image, ImageOps
from smolagents import Tool

from tools.common import log_outcome
from tools.paths import PathRefusedError, resolve_inside

logger = logging.getLogger(__name__)

DEFAULT_QUESTION = "Describe this image in detail, including any text you can read."
MAX_ERROR_DETAIL = 300
JPEG_QUALITY = 90


class NotAnImageError(Exception):
    """The file's bytes are not an image Pillow can decode."""


class AnalyzeImageTool(Tool):
    name = "analyze_image"
    description = """Ask a local vision model about an image file (a screenshot, a photo the owner sent, a file
in the allowed folders); returns its answer as text. Pixel positions it gives are rough.
Example: analyze_image(image_path="photos/receipt.jpg", question="What is the total?")"""
    inputs = {
        "image_path": {"type": "string", "description": "Path of the image file."},
        "question": {
            "type": "string",
            "description": "What to find out. Default: describe it and read its text.",
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
        keep_alive: str | int = "30m",
        max_pixels: int = 1280,
        max_output_tokens: int = 1024,
    ) -> None:
        super().__init__()
        if not readable_dirs:
            raise ValueError("AnalyzeImageTool needs at least one readable folder")
        self.ollama_base_url = ollama_base_url.rstrip("/")
        self.resolve_vision_model = resolve_vision_model
        self.readable_dirs = [Path(d) for d in readable_dirs]
        self.timeout_s = timeout_s
        self.max_image_bytes = max_image_bytes
        # Ollama's form: seconds as a number, or a duration string such as "30m" (a numeric string is refused).
        self.keep_alive = keep_alive
        self.max_pixels = max_pixels
        # Ollama's num_predict: a vision model caught in a loop stops here instead of writing until the timeout.
        self.max_output_tokens = max_output_tokens

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
            image = downscaled(path.read_bytes(), self.max_pixels)
        except NotAnImageError:
            return (
                f"ERROR: {path} is not a readable image (not PNG, JPEG, WebP, GIF or BMP, or damaged). "
                "Check the path; list the folder to find the right file."
            )
        try:
            model = self.resolve_vision_model()
        except Exception as exc:  # the resolver's message is the explanation
            return f"ERROR: no vision model available: {exc}"
        payload = {
            "model": model,
            "prompt": question,
            # Ollama wants plain base64 here; a data: URL prefix makes it reject the image.
            "images": [base64.b64encode(image).decode("ascii")],
            "stream": False,
            # Ollama turns thinking on for models that can think; the answer would wait for text nobody reads.
            "think": False,
            "keep_alive": self.keep_alive,
            "options": {"num_predict": self.max_output_tokens},
        }
        try:
            response = httpx.post(
                f"{self.ollama_base_url}/api/generate",
                json=payload,
                timeout=httpx.Timeout(self.timeout_s, connect=5),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout):
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
    reason = " ".join(str(body.get("error") or "").split())[:MAX_ERROR_DETAIL]
    if response.status_code >= 500:
        # Loading failures (out of memory, a model file that does not fit) arrive as 500 {"error": "<reason>"}.
        return (
            f"ERROR: Ollama could not run the vision model '{model}': {reason or f'HTTP {response.status_code}'}. "
            "Do not retry. Tell the owner: a smaller vision model or more free memory is needed."
        )
    if response.status_code != 200:
        return (
            f"ERROR: Ollama refused the image for '{model}' (HTTP {response.status_code}): {reason or 'no reason given'}. "
            "Try another image file, or tell the owner."
        )
    answer = body.get("response")
    if not isinstance(answer, str) or not answer.strip():
        return f"ERROR: the vision model '{model}' returned an empty answer. Ask a more specific question."
    return answer.strip()


def downscaled(data: bytes, max_pixels: int) -> bytes:
    """The image with its longest side at most max_pixels (aspect ratio kept, never upscaled).

    Ollama does not resize, and a vision model's cost grows with the pixels: a 12-megapixel photo costs minutes
    on a CPU. An image already small enough is returned as it is; a larger one is re-encoded, as PNG when it
    has transparency or was a PNG (text in screenshots stays sharp), else as JPEG.
    """
    try:
        with Image.open(io.BytesIO(data)) as original:
            source_format = original.format
            if max(original.size) <= max_pixels:
                original.load()  # proves it decodes: a damaged file fails here, not inside Ollama
                return data
            has_alpha = original.mode in ("RGBA", "LA", "PA") or (
                original.mode == "P" and "transparency" in original.info
            )
            as_png = has_alpha or source_format == "PNG"
            image: Image.Image = original
            if image.mode not in ("RGB", "RGBA", "L", "LA"):
                image = image.convert("RGBA" if has_alpha else "RGB")
            image.thumbnail((max_pixels, max_pixels), Image.Resampling.LANCZOS)
            # Phones store the orientation as a tag, which re-encoding drops; apply it to the pixels instead.
            image = ImageOps.exif_transpose(image)
            out = io.BytesIO()
            if as_png:
                image.save(out, format="PNG")
            else:
                image.convert("L" if image.mode == "L" else "RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # UnidentifiedImageError and truncated files are OSErrors; some decoders raise ValueError or SyntaxError.
        raise NotAnImageError(type(exc).__name__) from exc
