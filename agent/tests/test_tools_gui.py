"""Clipboard, screenshot and mouse/keyboard tools on a private Xvfb display, and without any display."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.tools_fixtures import SCREEN_HEIGHT, SCREEN_WIDTH
from tools.clipboard import ClipboardTool
from tools.mouse_keyboard import MouseKeyboardTool
from tools.screenshot import ScreenshotTool

AGENT_DIR = Path(__file__).resolve().parent.parent
NO_DISPLAY = "ERROR: no graphical display available (DISPLAY is not set)"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 under Xvfb")
# pyautogui's own source trips a DeprecationWarning ('\e') on first import; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")


def xclip_output(display_name: str) -> str:
    env = {**os.environ, "DISPLAY": display_name}
    return subprocess.run(["xclip", "-o", "-selection", "clipboard"], env=env, capture_output=True, text=True).stdout


def saved_path(result: str) -> Path:
    match = re.search(r"to (\S+\.png)\.", result)
    assert match, result
    return Path(match.group(1))


@linux_only
def test_clipboard_write_then_read_round_trip(display: str) -> None:
    text = "héllo wörld 🎉\nsecond line"
    clipboard = ClipboardTool()
    assert clipboard(action="write", text=text).startswith("Copied")
    # Straight away: a paste right after copy is what an agent's next ctrl+v does.
    assert clipboard(action="read") == text
    # And through xclip, so the test does not only agree with the tool itself.
    assert xclip_output(display) == text


@linux_only
def test_clipboard_reads_text_another_program_copied(display: str) -> None:
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xclip", "-selection", "clipboard"], input="from xclip", text=True, env=env, check=True)
    deadline = time.monotonic() + 5
    while xclip_output(display) != "from xclip" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ClipboardTool()(action="read") == "from xclip"


@linux_only
def test_screenshot_saves_png_of_the_whole_screen(display: str, tmp_path: Path) -> None:
    result = ScreenshotTool(tmp_path / "shots")()
    path = saved_path(result)
    assert path.parent == tmp_path / "shots"
    assert re.fullmatch(r"screenshot_\d{8}_\d{6}_\d{6}\.png", path.name)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (SCREEN_WIDTH, SCREEN_HEIGHT)


@linux_only
def test_screenshot_of_region_has_the_region_size(display: str, tmp_path: Path) -> None:
    path = saved_path(ScreenshotTool(tmp_path)(region="10, 20, 300, 100"))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (300, 100)


@linux_only
@pytest.mark.parametrize("region", ["1200,0,200,10", "0,0,0,10", "-1,0,5,5", "1,2,3", "a,b,c,d"])
def test_screenshot_refuses_bad_regions(display: str, tmp_path: Path, region: str) -> None:
    assert ScreenshotTool(tmp_path)(region=region).startswith("ERROR:")
    assert list(tmp_path.iterdir()) == []


@linux_only
def test_mouse_move_then_position_matches(display: str) -> None:
    result = MouseKeyboardTool()(action="move", x=321, y=234)
    assert not result.startswith("ERROR"), result
    where = subprocess.run(
        ["xdotool", "getmouselocation", "--shell"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "X=321\n" in where and "Y=234\n" in where


@linux_only
def test_mouse_drag_ends_at_target(display: str) -> None:
    result = MouseKeyboardTool()(action="drag", x=100, y=100, x2=400, y2=300)
    assert result.endswith("(400, 300).")


@linux_only
def test_mouse_refuses_coordinates_off_screen(display: str) -> None:
    result = MouseKeyboardTool()(action="click", x=SCREEN_WIDTH + 10, y=5)
    assert result.startswith("ERROR:") and "outside" in result


@linux_only
def test_keyboard_refuses_characters_it_cannot_type(display: str) -> None:
    result = MouseKeyboardTool()(action="type", text="café")
    assert result.startswith("ERROR:") and "clipboard" in result


@linux_only
def test_keyboard_hotkey_accepts_aliases_and_rejects_unknown_keys(display: str) -> None:
    tool = MouseKeyboardTool()
    assert tool(action="hotkey", keys="super") == "Pressed win."
    assert tool(action="hotkey", keys="Control+Shift+T") == "Pressed ctrl+shift+t."
    assert tool(action="hotkey", keys="ctrl+banana").startswith("ERROR:")


def test_mouse_keyboard_rejects_unknown_action_without_touching_the_display() -> None:
    assert MouseKeyboardTool()(action="teleport").startswith("ERROR:")


def run_without_display(snippet: str) -> str:
    # A fresh interpreter: pyautogui keeps the display it found at its first import.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=AGENT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@linux_only
@pytest.mark.parametrize(
    "snippet",
    [
        "from tools.clipboard import ClipboardTool; print(ClipboardTool()(action='read'))",
        "from tools.clipboard import ClipboardTool; print(ClipboardTool()(action='write', text='x'))",
        "from tools.mouse_keyboard import MouseKeyboardTool; print(MouseKeyboardTool()(action='move', x=1, y=1))",
        "from tools.mouse_keyboard import MouseKeyboardTool; print(MouseKeyboardTool()(action='hotkey', keys='alt+f4'))",
        "from pathlib import Path; from tools.screenshot import ScreenshotTool; "
        "print(ScreenshotTool(Path('unused'))())",
    ],
)
def test_gui_tools_report_missing_display_instead_of_crashing(snippet: str) -> None:
    assert run_without_display(snippet).startswith(NO_DISPLAY)
