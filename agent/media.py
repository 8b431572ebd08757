"""Images sent with a turn: decoded, checked and saved where the agent's tools can read them."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from pathlib import Path

from errors import ServiceError

_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"BM": "bmp",
}


def _extension(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _SIGNATURES.items() if data.startswith(magic)), None)


def save_images(encoded: list[str], media_dir: Path, max_bytes: int) -> list[Path]:
    """Decode every image first, so a bad one leaves nothing behind; then write them all."""
    decoded: list[tuple[bytes, str]] = []
    for index, text in enumerate(encoded):
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError("invalid_request", f"images[{index}] is not valid base64.", 422) from None
        if len(data) > max_bytes:
            raise ServiceError(
                "image_too_large", f"images[{index}] is {len(data)} bytes; the limit is {max_bytes} bytes.", 413
            )
        ext = _extension(data)
        if ext is None:
            raise ServiceError("invalid_request", f"images[{index}] is not a PNG, JPEG, GIF, WebP or BMP image.", 422)
        decoded.append((data, ext))
    media_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for data, ext in decoded:
        path = media_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}.{ext}"
        path.write_bytes(data)
        paths.append(path)
    return paths
