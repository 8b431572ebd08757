"""Drive the owner's mouse and keyboard (pyautogui)."""

from __future__ import annotations

import logging
import time
from types import ModuleType

from smolagents import Tool

from tools.common import gui_error, log_outcome

logger = logging.getLogger(__name__)

ACTIONS = ("click", "double_click", "right_click", "move", "type", "hotkey", "drag", "scroll")
# Names people (and LLMs) use for keys that pyautogui spells differently.
KEY_ALIASES = {
    "super": "win",
    "windows": "win",
    "meta": "win",
    "start": "win",
    "cmd": "command",
    "control": "ctrl",
    "escape": "esc",
    "return": "enter",
    "del": "delete",
    "pgup": "pageup",
    "pgdn": "pagedown",
}


class MouseKeyboardTool(Tool):
    name = "mouse_keyboard"
    description = """Use the owner's mouse and keyboard. x,y are screen pixels from the top-left.
You cannot see the screen: take a screenshot and ask analyze_image where things are first.
Actions:
- click, double_click, right_click: at x,y (default: where the mouse is)
- move: to x,y
- drag: from x,y to x2,y2
- scroll: `amount` clicks (positive up, negative down), at x,y if given
- type: type `text` (plain ASCII; for accents, clipboard then hotkey "ctrl+v")
- hotkey: press `keys`, e.g. "ctrl+c", "alt+f4", "super"
Example: mouse_keyboard(action="click", x=640, y=400)
A mouse in a screen corner is the owner's emergency stop: avoid the corners."""
    inputs = {
        "action": {"type": "string", "description": f"One of: {', '.join(ACTIONS)}."},
        "x": {"type": "integer", "description": "Pixels from the left.", "nullable": True},
        "y": {"type": "integer", "description": "Pixels from the top.", "nullable": True},
        "x2": {"type": "integer", "description": "Drag end x.", "nullable": True},
        "y2": {"type": "integer", "description": "Drag end y.", "nullable": True},
        "text": {"type": "string", "description": "Text, for type.", "nullable": True},
        "keys": {"type": "string", "description": 'Keys joined by "+", for hotkey.', "nullable": True},
        "amount": {"type": "integer", "description": "Scroll clicks, for scroll.", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        action: str,
        x: int | None = None,
        y: int | None = None,
        x2: int | None = None,
        y2: int | None = None,
        text: str | None = None,
        keys: str | None = None,
        amount: int | None = None,
    ) -> str:
        started = time.monotonic()
        action = (action or "").strip().lower()
        if action not in ACTIONS:
            result = f"ERROR: unknown action '{action}'. Use one of: {', '.join(ACTIONS)}."
        else:
            try:
                import pyautogui  # imported here: without a display the import itself raises KeyError('DISPLAY')

                # Keep the fail-safe on: slamming the mouse into a corner is the owner's way to stop a
                # runaway agent. pyautogui then raises FailSafeException, reported below.
                pyautogui.FAILSAFE = True
                result = _act(pyautogui, action, x, y, x2, y2, text, keys, amount)
            except Exception as exc:  # Xlib, pyautogui and OS errors share no base class
                result = _failure(action, exc)
        return log_outcome(logger, self.name, started, result, action=action if action in ACTIONS else "unknown")


def _failure(action: str, exc: Exception) -> str:
    if type(exc).__name__ == "FailSafeException":
        return (
            "ERROR: stopped by the fail-safe: the mouse is in a screen corner, which is the owner's emergency "
            "stop. Do not retry unless the owner asks you to continue."
        )
    return gui_error(f"use the mouse/keyboard ({action})", exc)


def _act(
    gui: ModuleType,
    action: str,
    x: int | None,
    y: int | None,
    x2: int | None,
    y2: int | None,
    text: str | None,
    keys: str | None,
    amount: int | None,
) -> str:
    width, height = gui.size()
    for px, py in ((x, y), (x2, y2)):
        if px is not None and py is not None and not gui.onScreen(px, py):
            return f"ERROR: ({px}, {py}) is outside the {width}x{height} screen. Use coordinates inside it."
    if action in ("click", "double_click", "right_click", "move", "drag") and (x is None) != (y is None):
        return f"ERROR: {action} needs both x and y (or neither, to use the current mouse position)."

    if action == "click":
        gui.click(x, y)
    elif action == "double_click":
        gui.doubleClick(x, y)
    elif action == "right_click":
        gui.rightClick(x, y)
    elif action == "move":
        if x is None:
            return "ERROR: move needs x and y."
        gui.moveTo(x, y)
    elif action == "drag":
        if None in (x, y, x2, y2):
            return "ERROR: drag needs x, y (start) and x2, y2 (end)."
        gui.moveTo(x, y)
        gui.dragTo(x2, y2, duration=0.3, button="left")
    elif action == "scroll":
        if not amount:
            return "ERROR: scroll needs a non-zero `amount` (positive = up, negative = down)."
        gui.scroll(amount, x, y)
    elif action == "type":
        if not text:
            return "ERROR: type needs `text`."
        untypeable = sorted({c for c in text if not gui.isValidKey(c)})
        if untypeable:
            # pyautogui silently skips such characters; refusing beats typing a mangled text.
            return (
                f"ERROR: these characters cannot be typed: {''.join(untypeable)!r}. Put the text on the clipboard "
                '(clipboard action=write) and paste it with hotkey keys="ctrl+v".'
            )
        gui.write(text, interval=0.01)
        return f"Typed {len(text)} characters."
    elif action == "hotkey":
        combo = _parse_keys(keys or "")
        unknown = [k for k in combo if not gui.isValidKey(k)]
        if not combo or unknown:
            return f"ERROR: unknown key(s) {unknown or [keys]}. Use names such as ctrl, alt, shift, super, enter, esc, tab, f4, a."
        gui.hotkey(*combo)
        return f"Pressed {'+'.join(combo)}."
    px, py = gui.position()
    return f"Done: {action.replace('_', ' ')}. The mouse is now at ({px}, {py})."


def _parse_keys(combo: str) -> list[str]:
    """'ctrl+shift+t' -> ['ctrl', 'shift', 't']; a trailing '+' is the plus key itself ('ctrl++')."""
    parts = [part.strip().lower() for part in combo.split("+")]
    keys = [KEY_ALIASES.get(part, part) for part in parts if part]
    if combo.strip().endswith("+"):
        keys.append("+")
    return keys
