"""Helpers every tool shares: metadata-only call logs and the no-display message for GUI tools."""

from __future__ import annotations

import logging
import os
import sys
import time

ERROR_PREFIX = "ERROR:"


def log_outcome(logger: logging.Logger, tool: str, started: float, result: str, **fields: object) -> str:
    """Log one tool call (name, status, duration; never its arguments or output) and pass the result on."""
    status = "error" if result.startswith(ERROR_PREFIX) else "ok"
    duration_ms = round((time.monotonic() - started) * 1000)
    logger.info("tool call", extra={"tool": tool, "status": status, "duration_ms": duration_ms, **fields})
    return result


def display_missing() -> bool:
    # pyautogui, ImageGrab and xclip all talk X11; without DISPLAY they cannot work (Wayland needs XWayland).
    return sys.platform.startswith("linux") and not os.environ.get("DISPLAY")


def gui_error(action: str, exc: BaseException, hint: str = "") -> str:
    """Turn whatever a GUI library raised into a message the LLM can act on."""
    if display_missing():
        return (
            f"ERROR: no graphical display available (DISPLAY is not set), so I cannot {action}. "
            "The agent runs without a desktop session; do the task another way (for example with "
            "file_system or os_exec) or ask the owner to run the agent inside their desktop session."
        )
    detail = f"{type(exc).__name__}: {exc}".strip()
    return f"ERROR: could not {action} ({detail}). {hint}".strip()
