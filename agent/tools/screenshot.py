"""Capture the screen (or a region of it) to a PNG file."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from smolagents import Tool

from tools.common import gui_error, log_outcome

logger = logging.getLogger(__name__)


class ScreenshotTool(Tool):
    name = "screenshot"
    description = """Save a screenshot of the screen (or a region) as PNG; returns its path.
You cannot see it: ask analyze_image about that path.
Example: screenshot(region="0,0,800,600")"""
    inputs = {
        "region": {
            "type": "string",
            "description": '"x,y,width,height" in pixels from the top-left. Omit for the whole screen.',
            "nullable": True,
        }
    }
    output_type = "string"

    def __init__(self, screenshot_dir: Path) -> None:
        super().__init__()
        self.screenshot_dir = Path(screenshot_dir)

    def forward(self, region: str | None = None) -> str:
        started = time.monotonic()
        return log_outcome(logger, self.name, started, self._capture(region))

    def _capture(self, region: str | None) -> str:
        box = None
        if region and region.strip():
            box = _parse_region(region)
            if box is None:
                return f'ERROR: region \'{region}\' is not "x,y,width,height" with whole numbers and positive width and height, e.g. "0,0,800,600".'
        try:
            # ImageGrab talks to X11 directly; pyautogui.screenshot() would need the scrot program.
            from PIL import ImageGrab

            image = ImageGrab.grab()
        except Exception as exc:  # X errors surface as OSError, KeyError or others
            return gui_error("take a screenshot", exc)
        if box is not None:
            left, top, right, bottom = box
            if right > image.width or bottom > image.height:
                return f"ERROR: region '{region}' goes beyond the {image.width}x{image.height} screen. Choose a region inside it."
            image = image.crop(box)
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / f"screenshot_{datetime.now():%Y%m%d_%H%M%S_%f}.png"
        image.save(path, format="PNG")
        return f"Saved a {image.width}x{image.height} screenshot to {path}. Use analyze_image on this path to see what it shows."


def _parse_region(region: str) -> tuple[int, int, int, int] | None:
    try:
        x, y, width, height = (int(part.strip()) for part in region.split(","))
    except ValueError:
        return None
    if x < 0 or y < 0 or width <= 0 or height <= 0:
        return None
    return x, y, x + width, y + height
