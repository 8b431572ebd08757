"""Read or replace the text on the desktop clipboard."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from smolagents import Tool

from tools.common import gui_error, log_outcome

logger = logging.getLogger(__name__)

MAX_READ_CHARS = 20_000
SETTLE_TIMEOUT_S = 2.0
INSTALL_HINT = "On Linux the clipboard needs xclip or xsel (Debian: `apt install xclip`); on Wayland, wl-clipboard."


class ClipboardTool(Tool):
    name = "clipboard"
    description = """The owner's clipboard: read returns its text, write puts `text` on it.
Example: clipboard(action="write", text="Meeting at 15:00")"""
    inputs = {
        "action": {"type": "string", "description": "read or write."},
        "text": {"type": "string", "description": "Text, for write.", "nullable": True},
    }
    output_type = "string"

    def forward(self, action: str, text: str | None = None) -> str:
        started = time.monotonic()
        action = (action or "").strip().lower()
        result = self._run(action, text)
        return log_outcome(
            logger, self.name, started, result, action=action if action in ("read", "write") else "unknown"
        )

    def _run(self, action: str, text: str | None) -> str:
        if action not in ("read", "write"):
            return f'ERROR: unknown action \'{action}\'. Use action="read" or action="write".'
        if action == "write" and text is None:
            return "ERROR: write needs `text`, the text to put on the clipboard."
        try:
            import pyperclip  # imported here: it probes the desktop, which a headless service may not have

            if action == "write":
                pyperclip.copy(text)
                if not _settled(pyperclip.paste, text or ""):
                    return "ERROR: the clipboard did not keep the text (another program may own it). Try again once."
                return f"Copied {len(text or '')} characters to the clipboard."
            content = pyperclip.paste()
        except Exception as exc:  # pyperclip raises its own types, KeyError, OSError... depending on the platform
            return gui_error(f"{action} the clipboard", exc, INSTALL_HINT)
        if not content:
            return "The clipboard is empty (or holds something other than text, such as an image)."
        if len(content) > MAX_READ_CHARS:
            return f"{content[:MAX_READ_CHARS]}\n[truncated: the clipboard holds {len(content)} characters]"
        return content


def _settled(paste: Callable[[], str], expected: str) -> bool:
    """Wait until the clipboard really holds `expected`.

    xclip forks a background process that takes the selection a moment after pyperclip.copy()
    returns; a paste (ours, or a ctrl+v the agent sends next) in between gets the old content.
    """
    expected = expected.replace("\r\n", "\n")
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        if paste().replace("\r\n", "\n") == expected:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
