"""Files the agent sends back with an answer (send_file), kept by a random id until the gateway fetches them.

One Outbox per runner, shared by all runs. `add` remembers a file the send_file tool has already checked; `get`
finds it again by id until it expires (AGENT_ATTACHMENT_TTL_S). `open` is what `GET /files/{id}` serves: the file is
checked again at that moment (still a regular file at the same real path, inside the readable folders, not
protected, not empty, not over AGENT_MAX_ATTACHMENT_BYTES), so a symlink or file swapped in after send_file leaks
nothing. Only paths are kept, never the bytes.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tools.paths import is_inside, is_protected

DEFAULT_MIME = "application/octet-stream"
# WhatsApp's longest caption.
MAX_CAPTION_CHARS = 1024


@dataclass(frozen=True)
class Attachment:
    id: str
    # The file's real path when it was sent (owner data: never logged, so out of repr, as are name and caption).
    path: Path = field(repr=False)
    name: str = field(repr=False)
    mime: str
    size: int
    caption: str | None = field(repr=False)
    expires_at: float = field(repr=False)

    def wire(self) -> dict[str, Any]:
        """Its entry in the final event's `attachments`."""
        return {"id": self.id, "name": self.name, "mime": self.mime, "size": self.size, "caption": self.caption}


def mime_of(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or DEFAULT_MIME


def clean_caption(caption: str | None) -> str | None:
    """Trimmed and capped at WhatsApp's limit; None when there is nothing left."""
    text = (caption or "").strip()[:MAX_CAPTION_CHARS].strip()
    return text or None


class Outbox:
    def __init__(
        self,
        readable_dirs: Sequence[Path],
        protected: Sequence[Path],
        max_bytes: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.readable_dirs = [Path(d) for d in readable_dirs]
        self.protected = list(protected)
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, Attachment] = {}
        self._lock = threading.Lock()

    def add(self, real_path: Path, caption: str | None) -> Attachment:
        """Remember a checked file under a new random id (OSError if it cannot be read any more)."""
        size = os.stat(real_path).st_size
        now = self._clock()
        entry = Attachment(
            id=secrets.token_urlsafe(18),
            path=real_path,
            name=real_path.name,
            mime=mime_of(real_path),
            size=size,
            caption=clean_caption(caption),
            expires_at=now + self.ttl_s,
        )
        with self._lock:
            for ident in [i for i, e in self._entries.items() if e.expires_at <= now]:
                del self._entries[ident]
            self._entries[entry.id] = entry
        return entry

    def get(self, file_id: str) -> Attachment | None:
        """The entry for `file_id` if it is known and not expired."""
        with self._lock:
            entry = self._entries.get(file_id)
            if entry is not None and entry.expires_at <= self._clock():
                del self._entries[file_id]
                return None
            return entry

    def open(self, file_id: str) -> tuple[Attachment, BinaryIO, int] | None:
        """The entry, its file opened for reading and its size now; None when it may not (or cannot) be served."""
        entry = self.get(file_id)
        if entry is None:
            return None
        path = entry.path
        if not self._allowed(path):
            return None
        try:
            # O_NOFOLLOW: a symlink put at the path itself is refused; O_NONBLOCK: a FIFO put there cannot hang us.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        try:
            opened = os.fstat(fd)
            now = os.stat(path)
        except OSError:
            os.close(fd)
            return None
        # The file opened is the one at the checked path now (no folder swapped between the check and the open).
        same = (opened.st_dev, opened.st_ino) == (now.st_dev, now.st_ino)
        if not (same and stat.S_ISREG(opened.st_mode) and 0 < opened.st_size <= self.max_bytes and self._allowed(path)):
            os.close(fd)
            return None
        return entry, os.fdopen(fd, "rb"), opened.st_size

    def _allowed(self, path: Path) -> bool:
        """Still at the same real path (no symlink on the way), inside the readable folders, not protected."""
        return (
            os.path.realpath(path) == str(path)
            and is_inside(path, self.readable_dirs)
            and not is_protected(path, self.protected)
        )
