"""Reminders set in conversation: the gateway stores them and sends the text back to the chat the turn came from.

The agent never touches the database: it POSTs `{GATEWAY_URL}/api/reminders` with the shared AGENT_API_KEY as a
bearer, and the run's opaque `reply_to` (tools.run_context) names the chat. Contract (gateway side, issue 13):
request `{"reply_to", "when", "text", "repeat": "cron" | null}`; 201 `{"id", "next_run", "time_zone"}`;
4xx `{"error", "code"}` whose reason is passed on to the model.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Any

import httpx
from smolagents import Tool

from tools.common import log_outcome
from tools.run_context import current_run

logger = logging.getLogger(__name__)

REPEATS = ("cron",)
ISO_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::00)?$")
NO_CHAT = (
    "ERROR: reminders can only be set from a chat (WhatsApp, Talk or the webchat), not from a scheduled job or "
    "the console; tell the owner."
)


class ScheduleMessageTool(Tool):
    name = "schedule_message"
    description = """Send text to this chat later, as written (a reminder).
when is local time, as in the task's "Now:" line; or 5 cron fields with repeat="cron".
Example: schedule_message(when="2026-12-04T09:00", text="Call the dentist")"""
    inputs = {
        "when": {"type": "string", "description": "Local date-time, or cron fields."},
        "text": {"type": "string", "description": "What to send."},
        "repeat": {"type": "string", "description": '"cron", or omit for once.', "nullable": True},
    }
    output_type = "string"
    # Reads the run's reply_to through tools.run_context.current_run(); the runner binds it to each run.
    uses_run_context = True

    def __init__(self, gateway_url: str, api_key: str | None, timeout_s: float = 10) -> None:
        super().__init__()
        self.gateway_url = gateway_url.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s

    def forward(self, when: str, text: str, repeat: str | None = None) -> str:
        started = time.monotonic()
        result, status = self._schedule(when, text, repeat)
        return log_outcome(logger, self.name, started, result, http_status=status)

    def _schedule(self, when: str, text: str, repeat: str | None) -> tuple[str, int | None]:
        reply_to = current_run().reply_to
        if not reply_to:
            return NO_CHAT, None
        problem = _local_problem(when, text, repeat)
        if problem:
            return problem, None
        if not self._api_key:
            return (
                "ERROR: reminders are off because AGENT_API_KEY is not set (the gateway accepts reminders only "
                "with it); tell the owner the reminder is not set.",
                None,
            )
        body = {"reply_to": reply_to, "when": when.strip(), "text": text, "repeat": (repeat or "").strip() or None}
        try:
            response = httpx.post(
                f"{self.gateway_url}/api/reminders",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                timeout=self.timeout_s,
            )
        except httpx.TimeoutException:
            return (
                f"ERROR: the gateway did not answer within {self.timeout_s:g} s, so the reminder may or may not be "
                "set. Do not try again; tell the owner to check with /reminders.",
                None,
            )
        except httpx.HTTPError as exc:
            return (
                f"ERROR: the gateway is unreachable at {self.gateway_url} ({type(exc).__name__}), so the reminder "
                "is not set. Tell the owner (is the gateway running, and GATEWAY_URL right?).",
                None,
            )
        return _interpret(response, self.gateway_url), response.status_code


def _local_problem(when: str, text: str, repeat: str | None) -> str | None:
    """What is obviously wrong with the arguments, before asking the gateway; None when nothing is."""
    if not text or not text.strip():
        return 'ERROR: empty text. Pass the message to send, e.g. text="Call the dentist".'
    kind = (repeat or "").strip() or None
    if kind is not None and kind not in REPEATS:
        return 'ERROR: repeat must be "cron" (with a cron expression in when) or omitted for a one-time reminder.'
    if not when or not when.strip():
        return 'ERROR: empty when. Pass a local date-time such as when="2026-12-04T09:00".'
    if kind == "cron":
        if len(when.split()) != 5:
            return (
                'ERROR: with repeat="cron", when must be 5 fields: minute hour day month weekday, '
                'e.g. "0 9 * * 1" for Mondays at 09:00.'
            )
        return None
    try:
        parsed = datetime.fromisoformat(when.strip())
    except ValueError:
        return (
            'ERROR: when must be a local date-time YYYY-MM-DDTHH:MM, e.g. "2026-12-04T09:00" (for a repeating '
            'reminder, pass a cron expression with repeat="cron").'
        )
    if parsed.tzinfo is not None:
        return 'ERROR: give when in local time without an offset or zone, e.g. "2026-12-04T09:00".'
    return None


def _interpret(response: httpx.Response, url: str) -> str:
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    answer = payload if isinstance(payload, dict) else {}
    if response.status_code in (200, 201):
        ident, next_run, zone = (answer.get(k) for k in ("id", "next_run", "time_zone"))
        if not (isinstance(ident, str) and isinstance(next_run, str)):
            return (
                "ERROR: the gateway accepted the reminder but its answer was unreadable. Do not try again; "
                "tell the owner to check with /reminders."
            )
        where = f" ({zone})" if isinstance(zone, str) and zone else ""
        shown = ISO_DATE_TIME.sub(r"\1 \2", next_run.strip())
        return f"Scheduled (id {ident}): next on {shown}{where}. Tell the owner."
    if response.status_code == 401:
        return (
            "ERROR: the gateway refused the agent's key (AGENT_API_KEY must be the same for both services), so the "
            "reminder is not set; tell the owner."
        )
    reason = answer.get("error")
    if 400 <= response.status_code < 500 and isinstance(reason, str) and reason.strip():
        return f"ERROR: {reason.strip()}"
    if response.status_code == 404:
        return f"ERROR: the gateway at {url} has no reminders API (is GATEWAY_URL right?); tell the owner."
    if 400 <= response.status_code < 500:
        return f"ERROR: the gateway refused the reminder (HTTP {response.status_code}); tell the owner."
    return (
        f"ERROR: the gateway failed (HTTP {response.status_code}), so the reminder is not set. "
        "Try once more, then tell the owner."
    )
