"""A local stand-in for the gateway's reminders API (`POST /api/reminders`), as schedule_message calls it, and
for its approvals API, as approvals.py calls it.

The contract (issue 13): bearer AGENT_API_KEY; body `{"reply_to": str, "when": str, "text": str, "repeat": "cron" |
null}`; 201 `{"id", "next_run", "time_zone"}`; 4xx `{"error", "code"}` (401 wrong key, 400 invalid body). Every
request is recorded (path, body, lower-cased headers) for `GET /_fake/requests`. A scripted answer
(POST /_fake/script {"answers": [{"status": 400, "body": {...}}], "delay_s": N}) replaces the next default one.

Approvals (issue 14): `POST /api/approvals` {"turn_ref", "tool", "summary", "reason": "outside_content" | "always",
"source"} → 201 {"id", "state": "pending", "expires_at"} (200 and the same approval when the turn asks the same tool
and summary again); `GET /api/approvals/{id}?wait=N` answers once the state is no longer pending, or after N s;
`POST /api/approvals/{id}/claim` → {"run": true} the first time an approved one is claimed, else {"run": false,
"state"}. Each new approval follows the next plan scripted with POST /_fake/script {"approvals": [{"decide":
"approved" | "denied" | "expired" | null, "after_s": 0.5, "claim": true, "expires_in_s": 600, "fail_polls": 0}]}
(default: approved at once); `decide: null` stays pending until it expires; `claim: false` answers run: false;
`fail_polls: N` answers the first N polls 503, as a restarting gateway would; `stuck: true` stays pending for good.
Run alone with `python -m tests.fakes.gateway --port 0 --key KEY`: it prints `READY <port>` once it listens.
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.scripted import FakeHandler, FakeServer, serve_until_interrupted

TIME_ZONE = "Europe/Paris"
FIELDS = {"reply_to", "when", "text", "repeat"}
APPROVAL_FIELDS = {"turn_ref", "tool", "summary", "reason", "source"}
APPROVAL_PATH = re.compile(r"^/api/approvals/([A-Za-z0-9_-]+)(/claim)?$")
MAX_WAIT_S = 60


@dataclass
class FakeApproval:
    id: str
    key: tuple[str, str, str]
    plan: dict[str, Any]
    created: float = field(default_factory=time.monotonic)
    claimed: bool = False
    polls: int = 0

    @property
    def expires_in_s(self) -> float:
        return float(self.plan.get("expires_in_s", 600))

    def expires_at(self) -> str:
        moment = datetime.now(UTC) + timedelta(seconds=self.expires_in_s - (time.monotonic() - self.created))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"  # as JavaScript writes it

    def state(self) -> str:
        if self.claimed:
            return "executed"
        age = time.monotonic() - self.created
        decide = self.plan.get("decide", "approved")
        if decide and age >= float(self.plan.get("after_s", 0)):
            return str(decide)
        if self.plan.get("stuck"):  # a gateway that never expires it: the agent's own deadline must end the wait
            return "pending"
        return "expired" if age >= self.expires_in_s else "pending"

    def view(self) -> dict[str, str]:
        return {"id": self.id, "state": self.state(), "expires_at": self.expires_at()}


class GatewayHandler(FakeHandler):
    server: FakeGateway

    def do_GET(self) -> None:
        if self.handle_control():
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.state.record(self.path, {}, headers)
        url = urlsplit(self.path)
        match = APPROVAL_PATH.match(url.path)
        if match is None or match.group(2):
            self.send_json(404, {"error": "Not found.", "code": "not_found"})
        elif self._authorised(headers):
            wait = min(float(parse_qs(url.query).get("wait", ["0"])[0] or 0), MAX_WAIT_S)
            self._poll(match.group(1), wait)

    def do_POST(self) -> None:
        if self.handle_control():
            return
        body = self.read_json()
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        state.record(self.path, body, headers)
        if self.path.startswith("/api/approvals"):
            if self._authorised(headers):
                self._approvals(body)
            return
        if self.path != "/api/reminders":
            self.send_json(404, {"error": "Not found.", "code": "not_found"})
            return
        if not self._authorised(headers):
            return
        self.server.model_pause()  # delay_s: a gateway slower than the tool's time-out
        scripted = state.next_item()
        if isinstance(scripted, dict):
            self.send_json(int(scripted.get("status", 201)), scripted.get("body", {}))
            return
        if set(body) != FIELDS or body.get("repeat") not in (None, "cron"):
            self.send_json(400, {"error": "Invalid reminder request.", "code": "invalid_request"})
            return
        when = str(body["when"])
        next_run = "2026-12-07T09:00" if body["repeat"] == "cron" else when[:16]
        self.send_json(
            201, {"id": self.server.issue(str(body["reply_to"])), "next_run": next_run, "time_zone": TIME_ZONE}
        )

    def _authorised(self, headers: dict[str, str]) -> bool:
        if headers.get("authorization") == f"Bearer {self.server.api_key}":
            return True
        self.send_json(401, {"error": "Wrong or missing agent key.", "code": "unauthorized"})
        return False

    def _approvals(self, body: dict[str, Any]) -> None:
        server = self.server
        if self.path == "/api/approvals":
            valid = set(body) == APPROVAL_FIELDS and all(isinstance(v, str) and v for v in body.values())
            if not valid or body["reason"] not in ("outside_content", "always"):
                self.send_json(400, {"error": "Invalid approval request.", "code": "invalid_request"})
                return
            approval, created = server.approval_for((body["turn_ref"], body["tool"], body["summary"]))
            self.send_json(201 if created else 200, approval.view())
            return
        match = APPROVAL_PATH.match(self.path)
        approval = server.approvals.get(match.group(1)) if match and match.group(2) else None
        if approval is None:
            self.send_json(404, {"error": "No such approval.", "code": "not_found"})
            return
        with server.state.lock:
            refused = approval.plan.get("claim", True) is False  # as if claimed already, by an earlier attempt
            runs = approval.state() == "approved" and not refused
            if runs:
                approval.claimed = True
            state = "executed" if refused else approval.state()
        self.send_json(200, {"run": True} if runs else {"run": False, "state": state})

    def _poll(self, ident: str, wait_s: float) -> None:
        approval = self.server.approvals.get(ident)
        if approval is None:
            self.send_json(404, {"error": "No such approval.", "code": "not_found"})
            return
        with self.server.state.lock:
            approval.polls += 1
            failing = approval.polls <= int(approval.plan.get("fail_polls", 0))
        if failing:
            self.send_json(503, {"error": "Restarting.", "code": "unavailable"})
            return
        until = time.monotonic() + wait_s
        while approval.state() == "pending" and time.monotonic() < until:
            time.sleep(0.02)
        self.send_json(200, approval.view())

    def on_script(self, body: dict[str, Any]) -> None:
        plans = body.get("approvals", [])
        if not isinstance(plans, list) or not all(isinstance(p, dict) for p in plans):
            raise ValueError("approvals: a list of plans")
        with self.server.state.lock:
            self.server.plans.extend(plans)

    def on_reset(self) -> None:
        with self.server.state.lock:
            self.server.issued.clear()
            self.server.ids = itertools.count(1)
            self.server.approvals.clear()
            self.server.plans.clear()


class FakeGateway(FakeServer):
    def __init__(self, api_key: str, port: int = 0) -> None:
        super().__init__(GatewayHandler, port)
        self.api_key = api_key
        self.ids = itertools.count(1)
        # Each reminder's id and the chat it was set for: which answer went to which request.
        self.issued: dict[str, str] = {}
        self.approvals: dict[str, FakeApproval] = {}
        self.plans: deque[dict[str, Any]] = deque()

    def script_approvals(self, *plans: dict[str, Any]) -> None:
        """The plans of the next approvals created (see the module's docstring), in order."""
        with self.state.lock:
            self.plans.extend(plans)

    def approval_for(self, key: tuple[str, str, str]) -> tuple[FakeApproval, bool]:
        """The turn's approval for this tool and summary, and whether it was created now."""
        with self.state.lock:
            for approval in self.approvals.values():
                if approval.key == key:
                    return approval, False
            plan = self.plans.popleft() if self.plans else {}
            approval = FakeApproval(f"a{next(self.ids):05x}", key, plan)
            self.approvals[approval.id] = approval
            return approval, True

    def approval_requests(self) -> list[dict[str, Any]]:
        """What the approvals API received, oldest first: each {"path", "body", "headers"}."""
        with self.state.lock:
            return [dict(r) for r in self.state.requests if r["path"].startswith("/api/approvals")]

    def issue(self, reply_to: str) -> str:
        with self.state.lock:
            ident = f"r{next(self.ids):05x}"
            self.issued[ident] = reply_to
        return ident

    def reminders(self) -> list[dict[str, Any]]:
        """What POST /api/reminders received, oldest first: each {"path", "body", "headers"}."""
        with self.state.lock:
            return [dict(r) for r in self.state.requests if r["path"] == "/api/reminders"]

    def wait_for(self, count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.reminders()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.reminders()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="k" * 40)
    args = parser.parse_args()
    serve_until_interrupted(FakeGateway(args.key, args.port))


if __name__ == "__main__":
    main()
