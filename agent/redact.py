"""Secrets the machine holds, and their removal from any text that leaves the agent or reaches the model.

A secret is the value of a variable whose NAME looks secret (…_KEY, …SECRET…, …TOKEN…, …PASSWORD…) in the
process environment or in the `.env`/`.env.local` files both services read, when it is long enough to mean
something (8+ characters). Every occurrence becomes `[redacted]`. One regex is compiled per set of secrets;
text without secrets costs one scan. Tool outputs are cleaned before the agent's code sees them (`RedactedTool`), and
each step before the model reads it back (`redact_step`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from smolagents import ActionStep, Tool

from wrapping import WrappingTool

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 8

# KEY as a whole word (AGENT_API_KEY, KEY, APIKEY), SECRET/TOKEN/PASSWORD anywhere; names of paths and URLs that
# merely mention a secret (…_TOKEN_FILE, …_KEY_PATH) hold no secret themselves.
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API)?KEY(?:_|$)|APIKEY|SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL", re.IGNORECASE
)
_NOT_A_VALUE = re.compile(r"_(?:FILE|PATH|DIR|DIRS|URL)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _NOT_A_VALUE.search(name)


def secret_values(env_files: Iterable[Path], environ: Mapping[str, str]) -> set[str]:
    """The values of the secret-named variables of the env files and of `environ`, 8+ characters long."""
    found: set[str] = set()
    for path in env_files:
        try:
            values = dotenv_values(path) if path.is_file() else {}
        except (OSError, UnicodeDecodeError):
            values = {}
        found.update(value for name, value in values.items() if value and is_secret_name(name))
    found.update(value for name, value in environ.items() if is_secret_name(name))
    return {value.strip() for value in found if len(value.strip()) >= MIN_SECRET_CHARS}


class Redactor:
    """Replaces every known secret by `[redacted]`: for whole texts (`redact`) and for streams (`stream`)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # A secret inside the marker itself ("redacted") could never be removed; such a value protects nothing.
        kept = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS and s not in REDACTED}
        # Longest first: where two secrets start at the same place, the whole of the longer one goes.
        ordered = sorted(kept, key=lambda s: (-len(s), s))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self.longest = len(ordered[0]) if ordered else 0
        self.count = len(ordered)

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def redact_optional(self, text: str | None) -> str | None:
        return None if text is None else self.redact(text)

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def _emit_upto(self, buffer: str) -> tuple[str, int]:
        """Redacted text for the part of `buffer` that no later text can change, and where that part ends.

        A secret starting at position p is decided by buffer[p : p + longest]; so every match starting before
        len(buffer) - longest + 1 is final, and so is the plain text before that point.
        """
        assert self._pattern is not None
        cut = len(buffer) - self.longest + 1
        if cut <= 0:
            return "", 0
        parts: list[str] = []
        position = 0
        for match in self._pattern.finditer(buffer):
            if match.start() >= cut:
                break
            parts.append(buffer[position : match.start()])
            parts.append(REDACTED)
            position = match.end()
        end = max(cut, position)
        parts.append(buffer[position:end])
        return "".join(parts), end


class StreamRedactor:
    """Redaction of a text that arrives in pieces: a secret may straddle two pieces.

    Holds back fewer characters than the longest secret; `flush()` gives the rest at the end. The
    concatenated output equals `redact()` of the concatenated input, however the input was cut.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._buffer = ""

    def feed(self, piece: str) -> str:
        if self._redactor.longest == 0:
            return piece
        self._buffer += piece
        text, end = self._redactor._emit_upto(self._buffer)
        self._buffer = self._buffer[end:]
        return text

    def flush(self) -> str:
        text, self._buffer = self._redactor.redact(self._buffer), ""
        return text


def load_redactor(env_files: Iterable[Path], environ: Mapping[str, str], extra: Iterable[str | None] = ()) -> Redactor:
    return Redactor([*secret_values(env_files, environ), *extra])


def scrubbed_environ(environ: Mapping[str, str], secrets: Redactor) -> dict[str, str]:
    """A copy of `environ` without secret-named variables, nor any variable whose value carries a known secret."""
    return {
        name: value for name, value in environ.items() if not is_secret_name(name) and secrets.redact(value) == value
    }


class RedactedTool(WrappingTool):
    """A tool whose output has the machine's secrets replaced, before the agent's code (and so the model) sees it."""

    def __init__(self, inner: Tool, redactor: Redactor) -> None:
        super().__init__(inner)
        self._redactor = redactor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.inner(*args, **kwargs)
        return self._redactor.redact(output) if isinstance(output, str) else output


def redact_step(step: ActionStep, redactor: Redactor) -> None:
    """What the model reads back from this step (observation, error, output) without secrets.

    Tool outputs are already clean; this catches what the agent's own code printed or raised.
    """
    step.observations = redactor.redact_optional(step.observations)
    if isinstance(step.action_output, str):
        step.action_output = redactor.redact(step.action_output)
    if step.error is not None:
        clean = redactor.redact(str(step.error))
        if clean != str(step.error):
            step.error.args = (clean,)
            step.error.message = clean
