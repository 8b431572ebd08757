"""Structured JSON logs carrying metadata only (ids, model, durations, status), never message text."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

from redact import Redactor

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else came from `extra=` and is emitted as a field.
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
    "litellm_redacted",
}

# Third-party loggers that may print prompts or responses at debug level.
_QUIET_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx", "httpcore", "smolagents")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; with a redactor, no known secret survives in any field (a last line of defence)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages and tracebacks can quote user content.
            entry["exc_type"] = record.exc_info[0].__name__
        if self._redactor is not None:
            redact = self._redactor.redact
            entry = {key: redact(value) if isinstance(value, str) else value for key, value in entry.items()}
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", redactor: Redactor | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        quiet.handlers[:] = []  # LiteLLM installs a plain-text handler of its own
        quiet.propagate = True
        quiet.setLevel(logging.ERROR)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv_logger = logging.getLogger(name)
        uv_logger.handlers[:] = []
        uv_logger.propagate = True
    # Python's warnings (a library's deprecation, say) would print plain text to stderr; they become JSON lines too.
    logging.captureWarnings(True)
    # Access lines would repeat what the request log already says.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
