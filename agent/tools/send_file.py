"""Send a file back with the answer: the run collects it, the final event lists it, the gateway fetches it.

The tool only checks the file and records it in the run's list (tools.run_context) and the runner's Outbox
(outbox.py, which `GET /files/{id}` serves from). Nothing is copied, and nothing of a run is kept on the tool.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from smolagents import Tool

from tools.common import log_outcome
from tools.paths import PathRefusedError, resolve_inside
from tools.run_context import current_run

logger = logging.getLogger(__name__)

MAX_FILES_PER_ANSWER = 5
NOT_IN_RUN = (
    "ERROR: files can only be sent from a run that answers someone (a chat, a scheduled job or the console); "
    "tell the owner where the file is instead."
)


def human_size(size: int) -> str:
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def attached(name: str, size: int) -> str:
    return (
        f"Attached {name} ({human_size(size)}); it is sent with your final answer. "
        "Now call final_answer with a short message."
    )


class SendFileTool(Tool):
    name = "send_file"
    description = """Send the owner a file with your final answer.
Example: send_file(path="report.pdf", caption="The report")"""
    inputs = {
        "path": {"type": "string", "description": "File path."},
        "caption": {"type": "string", "description": "Optional text.", "nullable": True},
    }
    output_type = "string"
    # Reads the run's attachment list and Outbox through tools.run_context.current_run(); the runner binds it.
    uses_run_context = True

    def __init__(self, readable_dirs: list[Path], protected: list[Path], max_bytes: int) -> None:
        super().__init__()
        if not readable_dirs:
            raise ValueError("SendFileTool needs at least one readable folder")
        self.readable_dirs = [Path(d) for d in readable_dirs]
        self.protected = list(protected)
        self.max_bytes = max_bytes

    def forward(self, path: str, caption: str | None = None) -> str:
        started = time.monotonic()
        result, size = self._send(path, caption)
        return log_outcome(logger, self.name, started, result, **({"size": size} if size is not None else {}))

    def _send(self, raw: str, caption: str | None) -> tuple[str, int | None]:
        run = current_run()
        if run.outbox is None:
            return NOT_IN_RUN, None
        try:
            real = resolve_inside(raw, self.readable_dirs, protected=self.protected)
        except PathRefusedError as exc:
            return str(exc), None
        for earlier in run.attachments:
            if earlier.path == real:
                return attached(earlier.name, earlier.size), earlier.size
        try:
            info = os.stat(real)
        except OSError:
            return f"ERROR: {raw} does not exist. List the folder to find the file's exact name.", None
        if not stat.S_ISREG(info.st_mode):
            return f"ERROR: {raw} is not a file (a folder?). Send one file; zip a folder first with os_exec.", None
        if info.st_size == 0:
            return f"ERROR: {raw} is empty; there is nothing to send.", 0
        if info.st_size > self.max_bytes:
            return (
                f"ERROR: {raw} is {human_size(info.st_size)}, over the {human_size(self.max_bytes)} limit for a "
                "file; tell the owner where it is instead (or send a smaller version).",
                info.st_size,
            )
        if len(run.attachments) >= MAX_FILES_PER_ANSWER:
            return (
                f"ERROR: at most {MAX_FILES_PER_ANSWER} files per answer, and {MAX_FILES_PER_ANSWER} are attached "
                "already; this one is not. Tell the owner in your final answer, or zip the files with os_exec.",
                info.st_size,
            )
        try:
            entry = run.outbox.add(real, caption)
        except OSError:
            return f"ERROR: {raw} could not be read; check it exists and try again.", None
        run.attachments.append(entry)
        return attached(entry.name, entry.size), entry.size
