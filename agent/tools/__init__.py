"""The agent's local tools, built from settings; the table below is the one place that lists them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from smolagents import Tool

from tools.analyze_image import AnalyzeImageTool
from tools.clipboard import ClipboardTool
from tools.file_system import FileSystemTool
from tools.mouse_keyboard import MouseKeyboardTool
from tools.os_exec import OsExecTool
from tools.screenshot import ScreenshotTool
from tools.web_search import WebSearchTool

if TYPE_CHECKING:
    from settings import Settings

TOOL_SUMMARIES: dict[str, str] = {
    "web_search": "Searches the web through your SearXNG instance (sends the query there; reads nothing local).",
    "file_system": "Reads, writes, moves, deletes (files and empty folders) and searches files inside FILES_ALLOWED_DIRS only.",
    "os_exec": "Runs any shell command as your user (not a sandbox: it can do whatever you can); starts in an allowed folder, time-limited, without the secret variables in its environment; commands naming the env files or the database are refused (best effort).",
    "clipboard": "Reads and replaces the text on your desktop clipboard.",
    "screenshot": "Captures your screen (or a region) to a PNG file in SCREENSHOT_DIR.",
    "mouse_keyboard": "Moves and clicks your mouse, types text and presses key combinations on your desktop.",
    "analyze_image": "Sends an image from the allowed, screenshot or media folders to your local Ollama vision model.",
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
        readable_dirs=[*s.allowed_dirs, s.screenshot_dir, s.media_dir],
        timeout_s=s.vision_timeout_s,
        max_image_bytes=s.agent_max_image_bytes,
    ),
}


def build_tools(settings: Settings, resolve_vision_model: Callable[[], str]) -> list[Tool]:
    """The tools named in settings.agent_tools, in that order."""
    return [_BUILDERS[name](settings, resolve_vision_model) for name in settings.agent_tools]


__all__ = [
    "AnalyzeImageTool",
    "ClipboardTool",
    "FileSystemTool",
    "MouseKeyboardTool",
    "OsExecTool",
    "ScreenshotTool",
    "WebSearchTool",
    "TOOL_SUMMARIES",
    "build_tools",
]
