"""save_images: any list of strings gives saved images or a 413/422 ServiceError with nothing written."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from errors import ServiceError
from media import save_images

MAX_BYTES = 64
MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBP", b""]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


images = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=80).map(_b64),
    st.tuples(st.sampled_from(MAGICS), st.binary(max_size=80)).map(lambda t: _b64(t[0] + t[1])),
    st.tuples(st.sampled_from(["data:image/png;base64,", "data:,", "data:"]), st.binary(max_size=40)).map(
        lambda t: t[0] + _b64(MAGICS[0] + t[1])
    ),
)


@given(st.lists(images, max_size=4))
def test_images_are_all_saved_or_none_is(encoded: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "media"
        try:
            paths = save_images(encoded, media, MAX_BYTES)
        except ServiceError as exc:
            assert exc.status in (413, 422)
            assert exc.to_dict()["code"] in ("invalid_request", "image_too_large")
            assert not media.exists() or not any(media.iterdir())
            return
        assert len(paths) == len(encoded)
        assert all(path.parent == media and 0 < path.stat().st_size <= MAX_BYTES for path in paths)
