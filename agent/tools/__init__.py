"""The agent's local tools, built from settings; the table below is the one place that lists them."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from smolagents import Tool

from tools.analyze_image import AnalyzeImageTool
from tools.clipboard import ClipboardTool
from tools.file_system import FileSystemTool
from tools.mouse_keyboard import MouseKeyboardTool
from tools.os_exec import OsExecTool
from tools.schedule_message import ScheduleMessageTool
from tools.screenshot import ScreenshotTool
from tools.send_file import SendFileTool
from tools.web_search import WebSearchTool

if TYPE_CHECKING:
    from settings import Settings

logger = logging.getLogger(__name__)

# Tools that need the owner's desktop session (X11, or Wayland with XWayland).
GUI_TOOLS = ("clipboard", "screenshot", "mouse_keyboard")
NO_DISPLAY = "no display"

TOOL_SUMMARIES: dict[str, str] = {
    "web_search": "Searches the web through your SearXNG instance (sends the query there; reads nothing local).",
    "file_system": "Reads, writes, moves, deletes (files and empty folders) and searches files inside FILES_ALLOWED_DIRS only.",
    "os_exec": "Runs any shell command as your user (not a sandbox: it can do whatever you can); starts in an allowed folder, time-limited, without the secret variables in its environment; commands naming the env files or the database are refused (best effort).",
    "clipboard": "Reads and replaces the text on your desktop clipboard.",
    "screenshot": "Captures your screen (or a region) to a PNG file in SCREENSHOT_DIR.",
    "mouse_keyboard": "Moves and clicks your mouse, types text and presses key combinations on your desktop.",
    "analyze_image": "Sends an image from the allowed, screenshot or media folders to your local Ollama vision model.",
    "schedule_message": "Sets a reminder through the gateway's API, sent back as written to the chat it was set from.",
    "send_file": "Sends a file from the allowed, screenshot or media folders to the owner with the answer (at most 5, AGENT_MAX_ATTACHMENT_BYTES each).",
}

_BUILDERS: dict[str, Callable[[Settings, Callable[[], str]], Tool]] = {
    "web_search": lambda s, _: WebSearchTool(s.searxng_url),
    "file_system": lambda s, _: FileSystemTool(s.allowed_dirs, protected=s.protected_files),
    "os_exec": lambda s, _: OsExecTool(
        s.allowed_dirs,
        timeout_s=s.os_exec_timeout_s,
        max_output=s.os_exec_max_output,
        protected=s.protected_files,
        secrets=s.redactor,
    ),
    "clipboard": lambda s, _: ClipboardTool(),
    "screenshot": lambda s, _: ScreenshotTool(s.screenshot_dir),
    "mouse_keyboard": lambda s, _: MouseKeyboardTool(),
    "analyze_image": lambda s, resolve: AnalyzeImageTool(
        s.ollama_base_url,
        resolve,
        readable_dirs=s.readable_dirs,
        timeout_s=s.vision_timeout_s,
        max_image_bytes=s.agent_max_image_bytes,
        keep_alive=s.keep_alive,
        max_pixels=s.vision_max_pixels,
        max_output_tokens=s.agent_max_output_tokens,
    ),
    "schedule_message": lambda s, _: ScheduleMessageTool(s.gateway_url, s.api_key),
    "send_file": lambda s, _: SendFileTool(
        s.readable_dirs, protected=s.protected_files, max_bytes=s.agent_max_attachment_bytes
    ),
}


def _has_display() -> bool:
    # Windows and macOS always have their desktop; elsewhere the GUI libraries need an X11 or Wayland session.
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def tool_availability(settings: Settings) -> dict[str, str]:
    """Each configured tool that cannot work here, with a short reason (for /health, /models and the log)."""
    if _has_display():
        return {}
    return {name: NO_DISPLAY for name in settings.agent_tools if name in GUI_TOOLS}


def build_tools(settings: Settings, resolve_vision_model: Callable[[], str]) -> list[Tool]:
    """The tools named in settings.agent_tools, in that order, without those that cannot work here.

    A tool left out is not in the system prompt at all, so the model neither pays for its description nor
    wastes a step on a call that can only fail.
    """
    unavailable = tool_availability(settings)
    if unavailable:
        logger.info(
            "tools_unavailable",
            extra={"tools": list(unavailable), "reason": "; ".join(sorted(set(unavailable.values())))},
        )
    return [_BUILDERS[name](settings, resolve_vision_model) for name in settings.agent_tools if name not in unavailable]


__all__ = [
    "AnalyzeImageTool",
    "ClipboardTool",
    "FileSystemTool",
    "MouseKeyboardTool",
    "OsExecTool",
    "ScheduleMessageTool",
    "ScreenshotTool",
    "SendFileTool",
    "WebSearchTool",
    "GUI_TOOLS",
    "TOOL_SUMMARIES",
    "build_tools",
    "tool_availability",
]
