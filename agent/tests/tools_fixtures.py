"""Fixtures for the tool tests: a private Xvfb display for the GUI tools, and allowed folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SCREEN_WIDTH, SCREEN_HEIGHT = 1280, 800


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Start our own Xvfb (never the developer's real desktop); yield its DISPLAY and an XAUTHORITY file."""
    missing = [name for name in ("Xvfb", "xclip", "xdotool") if shutil.which(name) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (Debian: apt-get install -y xvfb xclip xdotool)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message}; CI must install them")
        pytest.skip(message)
    binary = shutil.which("Xvfb") or "Xvfb"
    read_fd, write_fd = os.pipe()
    # -displayfd makes Xvfb pick a free display number and write it once it accepts connections,
    # which is both the free-number search and the readiness check.
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_fd), "-screen", "0", f"{SCREEN_WIDTH}x{SCREEN_HEIGHT}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as reader:
            number = reader.readline().strip()
        if not number:
            pytest.fail(f"Xvfb exited without opening a display (return code {proc.poll()})")
        # python-xlib (under pyautogui) fails with XauthError when the Xauthority file is missing;
        # an empty one means "no cookie", which this Xvfb (started without -auth) accepts.
        xauthority = tmp_path_factory.mktemp("xauth") / "Xauthority"
        xauthority.touch()
        yield f":{number}", xauthority
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def display(xvfb: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    """DISPLAY (and XAUTHORITY) pointing at the private Xvfb for one test."""
    name, xauthority = xvfb
    x11 = sys.modules.get("pyautogui._pyautogui_x11")
    if x11 is not None and x11._display.get_display_name() != name:
        # pyautogui keeps the display it found at import; it would drive another (maybe real) screen.
        pytest.fail("pyautogui was imported earlier with another DISPLAY; run the GUI tests in their own session")
    monkeypatch.setenv("DISPLAY", name)
    monkeypatch.setenv("XAUTHORITY", str(xauthority))
    return name


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    """An allowed folder next to (not inside) an `outside` folder the tools must not reach."""
    root = tmp_path / "allowed"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("top secret")
    return root
