"""The owner's approval before side effects that outside content could have caused (issue 14).

The policy is the two tables below: which calls have side effects (`SIDE_EFFECTS`, a predicate per tool on the
call's arguments) and which bring outside content into the turn (`OUTSIDE_CONTENT`). A new tool with side effects
gets a row here; the tools themselves know nothing of approvals.

- Decision: APPROVAL_MODE `off` runs every call; `always` asks before each side effect; `untrusted` asks only once
  outside content entered the run (images sent with the turn count from the start). A run nobody watches
  (`attended` false) or without the gateway's turn reference (the console, tests) is refused at once, without asking
  anyone; at most `MAX_ASKED_PER_RUN` approvals are asked per run.
- `GuardedTool` wraps every tool (runner.py): a side-effect call asks `RunApprovals.check` before the inner tool runs
  and, refused, returns an "ERROR: ..." text instead, so the model can answer without it; an outside-content tool
  marks the run once it has returned.
- The agent's own code runs in smolagents' LocalPythonExecutor, which already refuses `os`, `subprocess`, `shutil`,
  `pathlib` and `open`. `requests` is an authorised import, so `install_guards` puts a guard under it, at
  http.client's `putrequest` (requests and urllib3 reach it for every request, however they are called): GET, HEAD
  and OPTIONS mark outside content, any other method is the side effect "http_request", refused by raising
  `ApprovalRefused`. The guard acts only inside a run's code, never in a tool nor outside a run.
- smolagents runs that code in a ThreadPoolExecutor worker (for its time limit), which a ContextVar set in the run's
  thread does not reach: `install_guards` replaces that pool by `_RunContextPool`, whose jobs run in a copy of the
  submitting thread's context, and whose futures wait again for the time spent waiting for the owner.
- Waiting is counted on the run's `PauseClock`: the executor's time limit and the runner's deadline move later by
  it. Cancelling the run (client gone, /stop, time-out) ends a wait at once, refused.
- `GatewayApprover` asks the owner through the gateway (GATEWAY_URL, AGENT_API_KEY as a bearer):
  `POST /api/approvals` {"turn_ref", "tool", "summary", "reason", "source"} → {"id", "state", "expires_at"};
  `GET /api/approvals/{id}?wait=25` (long poll) until the state is no longer pending, or until expires_at + 5 s;
  then, approved, `POST /api/approvals/{id}/claim` → {"run": true} once per approval: the call runs only then.
  Connection errors and 5xx are retried every 2 s (the gateway may be restarting); 4xx refuse with the reason.
"""

from __future__ import annotations

import contextvars
import http.client
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, ParamSpec, TypeVar

import httpx
import smolagents.local_python_executor as smolagents_executor

from events import ApprovalEvent
from redact import Redactor
from tools.run_context import current_run
from wrapping import WrappingTool

logger = logging.getLogger(__name__)

ApprovalMode = Literal["untrusted", "always", "off"]
P = ParamSpec("P")
T = TypeVar("T")

HTTP_TOOL = "http_request"
READ_METHODS = frozenset({"get", "head", "options"})
FILE_CHANGES = frozenset({"write", "create", "delete", "move"})
MAX_ASKED_PER_RUN = 3
MAX_VALUE_CHARS = 200
MAX_SUMMARY_CHARS = 600


def _word(value: object) -> str:
    """An argument as the tools read it (operation, action, method): trimmed, lower case."""
    return value.strip().lower() if isinstance(value, str) else ""


# Which calls change something outside the conversation: tool name -> predicate on the call's arguments.
SIDE_EFFECTS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "os_exec": lambda call: True,
    "file_system": lambda call: _word(call.get("operation")) in FILE_CHANGES,
    "mouse_keyboard": lambda call: True,
    "clipboard": lambda call: _word(call.get("action")) == "write",
    # The agent's own code (requests, urllib3, http.client): anything but a read.
    HTTP_TOOL: lambda call: _word(call.get("method")) not in READ_METHODS,
}

# Which calls bring in words the owner did not write: tool name -> what the model read, once the call has returned.
OUTSIDE_CONTENT: dict[str, str] = {
    "web_search": "web search results",
    "analyze_image": "an image description",
    HTTP_TOOL: "a web page the code fetched",
}
IMAGE_IN_CHAT = "an image sent in the chat"
ALWAYS_SOURCE = "APPROVAL_MODE=always asks before every action with side effects"

# Decisions, as FinalEvent.approvals and the log line give them.
APPROVED, DENIED, EXPIRED = "approved", "denied", "expired"
UNATTENDED, CONSOLE, LIMIT = "unattended", "console", "limit"
REPEATED, CANCELLED, FAILED = "repeated", "cancelled", "error"

DO_NOT_RETRY = "Do not try it another way; answer without it and tell the owner what you wanted to do."
ALREADY_DONE = "ERROR: this action was already carried out once after the owner's approval; do not repeat it."


def needs_approval(tool: str, call: Mapping[str, Any]) -> bool:
    """Whether this call is a side effect (SIDE_EFFECTS); only then does the mode matter."""
    predicate = SIDE_EFFECTS.get(tool)
    return predicate is not None and predicate(call)


def source_text(what: str) -> str:
    return f"the assistant read {what} in this turn"


def summarise(tool: str, call: Mapping[str, Any], redactor: Redactor) -> str:
    """`tool(name="value", ...)` for the owner: secrets redacted, each value at most 200 characters, 600 in all."""
    parts: list[str] = []
    for name, value in call.items():
        if value is None:
            continue
        raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        text = redactor.redact(raw)
        if len(text) > MAX_VALUE_CHARS:
            text = text[: MAX_VALUE_CHARS - 1] + "…"
        parts.append(f"{name}={json.dumps(text, ensure_ascii=False) if isinstance(value, str) else text}")
    summary = f"{tool}({', '.join(parts)})"
    return summary if len(summary) <= MAX_SUMMARY_CHARS else summary[: MAX_SUMMARY_CHARS - 2] + "…)"


class PauseClock:
    """Seconds a run has spent waiting for the owner, a wait still going on included."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._total = 0.0
        self._since: float | None = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            self._since = self._clock()
        try:
            yield
        finally:
            with self._lock:
                if self._since is not None:
                    self._total += self._clock() - self._since
                self._since = None

    @property
    def waiting(self) -> bool:
        return self._since is not None

    def seconds(self) -> float:
        with self._lock:
            ongoing = self._clock() - self._since if self._since is not None else 0.0
            return self._total + ongoing


@dataclass(frozen=True)
class ApprovalRequest:
    # The gateway's signed reference of the turn, and the call's summary: owner data, never logged.
    turn_ref: str = field(repr=False)
    tool: str
    summary: str = field(repr=False)
    reason: str
    source: str

    def body(self) -> dict[str, str]:
        return {
            "turn_ref": self.turn_ref,
            "tool": self.tool,
            "summary": self.summary,
            "reason": self.reason,
            "source": self.source,
        }


@dataclass(frozen=True)
class Verdict:
    decision: str
    # Why, for FAILED (what the model is told).
    detail: str = ""


@dataclass
class RunApprovals:
    """One run's approvals: its settings, the outside content seen first, what was asked, the time spent waiting."""

    mode: ApprovalMode
    timeout_s: float
    redactor: Redactor
    # None: nobody can be asked (the run is refused as from the console).
    approver: GatewayApprover | None = None
    # The gateway's signed reference of the turn; None from the console and in tests. Never logged.
    turn_ref: str | None = field(default=None, repr=False)
    # False: a scheduled turn nobody watches, which cannot wait for a person.
    attended: bool = True
    cancel: threading.Event = field(default_factory=threading.Event)
    # Told of each approval created and decided (the runner's event stream).
    emit: Callable[[ApprovalEvent], None] = field(default=lambda event: None, repr=False)
    # "the assistant read ... in this turn": the first outside content, None while there was none.
    outside_source: str | None = None
    # {"tool", "decision", "waited_s"} for each side effect that needed approval, in order (FinalEvent.approvals).
    asked: list[dict[str, Any]] = field(default_factory=list)
    clock: PauseClock = field(default_factory=PauseClock)
    _asked_gateway: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def mark_outside(self, what: str) -> None:
        """Outside content entered the run (the first source is the one told to the owner)."""
        with self._lock:
            if self.outside_source is None:
                self.outside_source = source_text(what)

    def paused_s(self) -> float:
        return self.clock.seconds()

    def check(self, tool: str, call: Mapping[str, Any]) -> str | None:
        """None when this side-effect call may run now (at most once); otherwise what the model is told instead."""
        if self.mode == "off":
            return None
        with self._lock:
            source = self.outside_source
        if self.mode == "untrusted" and source is None:
            return None
        reason = "always" if self.mode == "always" else "outside_content"
        started = time.monotonic()
        verdict = self._decide(tool, call, reason, source or ALWAYS_SOURCE)
        waited = round(time.monotonic() - started, 1)
        with self._lock:
            self.asked.append({"tool": tool, "decision": verdict.decision, "waited_s": waited})
        logger.info(
            "approval", extra={"tool": tool, "decision": verdict.decision, "waited_s": waited, "reason": reason}
        )
        return None if verdict.decision == APPROVED else refusal(tool, verdict, self.timeout_s)

    def _decide(self, tool: str, call: Mapping[str, Any], reason: str, source: str) -> Verdict:
        if not self.attended:
            return Verdict(UNATTENDED)
        if not self.turn_ref or self.approver is None:
            return Verdict(CONSOLE)
        if self.cancel.is_set():  # the run is stopping: nobody is asked any more
            return Verdict(CANCELLED)
        with self._lock:
            if self._asked_gateway >= MAX_ASKED_PER_RUN:
                return Verdict(LIMIT)
            self._asked_gateway += 1
        request = ApprovalRequest(self.turn_ref, tool, summarise(tool, call, self.redactor), reason, source)
        with self.clock.paused():
            try:
                return self.approver.ask(request, self.cancel, self.emit)
            except Exception as exc:  # whatever went wrong, the call does not run
                logger.warning("approval_failed", extra={"tool": tool, "error_type": type(exc).__name__})
                return Verdict(FAILED, "the owner could not be asked (see the agent's log)")


def refusal(tool: str, verdict: Verdict, timeout_s: float) -> str:
    """What the model reads instead of the call's result."""
    decision = verdict.decision
    if decision == DENIED:
        return f"ERROR: denied by the owner: {tool} did not run. {DO_NOT_RETRY}"
    if decision == REPEATED:
        return ALREADY_DONE
    why = {
        UNATTENDED: "this is a scheduled run nobody watches",
        CONSOLE: "the console cannot ask for approval; set APPROVAL_MODE=off to allow it",
        LIMIT: f"too many actions needing approval in one turn (at most {MAX_ASKED_PER_RUN})",
        EXPIRED: f"expired: the owner did not answer within {timeout_s:g} s",
        CANCELLED: "the run was stopped while waiting for the owner",
    }.get(decision, verdict.detail or "the owner could not be asked")
    return f"ERROR: not allowed without the owner's approval: {why}. {tool} did not run. {DO_NOT_RETRY}"


class _Cancelled:
    """The run was stopped during a request to the gateway."""


class _GaveUp:
    """The gateway stayed unreachable (or failing with 5xx) until the deadline."""


GatewayAnswer = dict[str, Any] | Verdict | _Cancelled | _GaveUp


class GatewayApprover:
    """Asks the owner through the gateway's approvals API; shared by all runs, it keeps nothing of one."""

    def __init__(
        self,
        gateway_url: str,
        api_key: str | None,
        timeout_s: float,
        poll_wait_s: int = 25,
        retry_s: float = 2,
        request_timeout_s: float = 10,
        grace_s: float = 5,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.poll_wait_s = poll_wait_s
        self.retry_s = retry_s
        self.request_timeout_s = request_timeout_s
        self.grace_s = grace_s

    def ask(self, request: ApprovalRequest, cancel: threading.Event, emit: Callable[[ApprovalEvent], None]) -> Verdict:
        """The owner's decision on this call; APPROVED only once the claim said it runs now (at most once)."""
        answer = self._send("POST", "/api/approvals", request.body(), cancel, self._deadline(None))
        if isinstance(answer, _GaveUp):
            return Verdict(FAILED, "the gateway could not be reached to ask the owner")
        if not isinstance(answer, dict):
            return self._settled(answer)
        ident, state, expires_at = _approval(answer)
        if not ident or not state:
            return Verdict(FAILED, "the gateway's answer was unreadable")

        def tell(shown_state: str) -> None:
            emit(ApprovalEvent(ident, request.tool, request.summary, shown_state, expires_at, request.source))

        deadline = self._deadline(expires_at)
        if state == "pending":
            tell("pending")
        while state == "pending":
            left = deadline - time.monotonic()
            if left <= 0:
                tell(EXPIRED)
                return Verdict(EXPIRED)
            wait = max(1, min(self.poll_wait_s, math.ceil(left)))
            answer = self._send("GET", f"/api/approvals/{ident}?wait={wait}", None, cancel, deadline, wait)
            if isinstance(answer, _GaveUp):
                tell(EXPIRED)
                return Verdict(EXPIRED)
            if not isinstance(answer, dict):
                return self._settled(answer)
            _, new_state, new_expiry = _approval(answer)
            state = new_state or state
            if new_expiry and new_expiry != expires_at:
                expires_at, deadline = new_expiry, self._deadline(new_expiry)
        if state == "approved":
            return self._claim(ident, cancel, deadline, tell)
        if state in (DENIED, EXPIRED):
            tell(state)
            return Verdict(state)
        if state == "executed":
            tell(state)
            return Verdict(REPEATED)
        return Verdict(FAILED, f"the gateway answered an unknown state ({state[:40]})")

    def _claim(self, ident: str, cancel: threading.Event, deadline: float, tell: Callable[[str], None]) -> Verdict:
        if cancel.is_set():
            return Verdict(CANCELLED)
        # A lost answer is retried: the gateway then says run: false, so the call never runs twice.
        answer = self._send("POST", f"/api/approvals/{ident}/claim", {}, cancel, max(deadline, time.monotonic() + 30))
        if isinstance(answer, _GaveUp):
            return Verdict(FAILED, "the gateway could not be reached to carry out the approved action")
        if not isinstance(answer, dict):
            return self._settled(answer)
        if answer.get("run") is True:
            tell(APPROVED)
            return Verdict(APPROVED)
        state = answer.get("state")
        tell(state if isinstance(state, str) and state else "executed")
        return Verdict(REPEATED)

    @staticmethod
    def _settled(answer: Verdict | _Cancelled) -> Verdict:
        return Verdict(CANCELLED) if isinstance(answer, _Cancelled) else answer

    def _deadline(self, expires_at: str | None) -> float:
        """When to stop waiting (monotonic): the gateway's expiry plus a grace, never past twice the local timeout."""
        cap = time.monotonic() + 2 * self.timeout_s + self.grace_s
        try:
            expiry = datetime.fromisoformat(expires_at or "")
        except ValueError:
            return time.monotonic() + self.timeout_s + self.grace_s
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        left = (expiry - datetime.now(UTC)).total_seconds()
        return min(cap, time.monotonic() + left + self.grace_s)

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        cancel: threading.Event,
        deadline: float,
        wait_s: float = 0,
    ) -> GatewayAnswer:
        """One request, repeated every retry_s while the gateway is unreachable or failing, until `deadline`."""
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        send = partial(
            httpx.request,
            method,
            f"{self.gateway_url}{path}",
            json=body,
            headers=headers,
            timeout=self.request_timeout_s + wait_s,
        )
        while True:
            try:
                response = _interruptible(send, cancel)
            except httpx.HTTPError:
                response = None
            if isinstance(response, _Cancelled):
                return response
            if response is not None and response.status_code < 500:
                return _interpret(response)
            if time.monotonic() + self.retry_s > deadline:
                return _GaveUp()
            if cancel.wait(self.retry_s):
                return _Cancelled()


def _interpret(response: httpx.Response) -> dict[str, Any] | Verdict:
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if 200 <= response.status_code < 300:
        return payload if isinstance(payload, dict) else Verdict(FAILED, "the gateway's answer was unreadable")
    if response.status_code in (401, 403):
        return Verdict(FAILED, "the gateway refused the agent's key (AGENT_API_KEY must be the same for both services)")
    if response.status_code == 404:
        return Verdict(FAILED, "the gateway does not know this approval (is it up to date, and GATEWAY_URL right?)")
    reason = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(reason, str) and reason.strip():
        return Verdict(FAILED, f"the gateway refused the request ({reason.strip()[:200]})")
    return Verdict(FAILED, f"the gateway refused the request (HTTP {response.status_code})")


def _approval(payload: dict[str, Any]) -> tuple[str, str, str]:
    """(id, state, expires_at) of the gateway's answer; empty strings for what is missing."""
    values = [payload.get(key) for key in ("id", "state", "expires_at")]
    ident, state, expires_at = (value if isinstance(value, str) else "" for value in values)
    return ident, state, expires_at


def _interruptible(send: Callable[[], httpx.Response], cancel: threading.Event) -> httpx.Response | _Cancelled:
    """`send()` in a helper thread, abandoned as soon as the run is cancelled (a long poll lasts up to 25 s)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["response"] = send()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="approval-http", daemon=True).start()
    while not done.wait(0.1):
        if cancel.is_set():
            return _Cancelled()
    if "error" in box:
        raise box["error"]
    response: httpx.Response = box["response"]
    return response


# ---------- Where calls are guarded ----------

# True while the agent's own code runs (in smolagents' worker), and while a tool runs: the HTTP guard acts only in
# the first and never in the second (a tool is judged by its own row in SIDE_EFFECTS).
_in_agent_code: ContextVar[bool] = ContextVar("in_agent_code", default=False)
_in_tool: ContextVar[bool] = ContextVar("in_tool", default=False)


class GuardedTool(WrappingTool):
    """A tool called under the run's approvals: side effects asked for first, outside content marked after."""

    # Reads the run's approvals through current_run(); the runner binds it to each run.
    uses_run_context = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        run = current_run().approvals
        if run is None:
            return self.inner(*args, **kwargs)
        call = {**dict(zip(self.inputs, args, strict=False)), **kwargs}
        if needs_approval(self.name, call) and (refused := run.check(self.name, call)) is not None:
            return refused
        token = _in_tool.set(True)
        try:
            output = self.inner(*args, **kwargs)
        finally:
            _in_tool.reset(token)
        if self.name in OUTSIDE_CONTENT:
            run.mark_outside(OUTSIDE_CONTENT[self.name])
        return output


class ApprovalRefused(Exception):
    """An HTTP request of the agent's code that may not be sent; the model reads the message as the code's error."""


def _full_url(connection: http.client.HTTPConnection, target: str) -> str:
    if "://" in target:  # through a proxy: already absolute
        return target
    default = getattr(connection, "default_port", http.client.HTTP_PORT)
    scheme = "https" if default == http.client.HTTPS_PORT else "http"
    port = "" if connection.port in (None, default) else f":{connection.port}"
    return f"{scheme}://{connection.host}{port}{target}"


_original_putrequest = http.client.HTTPConnection.putrequest


def _guarded_putrequest(self: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> None:
    """http.client's first step of every request (requests and urllib3 included), judged inside a run's code."""
    run = current_run().approvals
    if run is not None and _in_agent_code.get() and not _in_tool.get():
        call = {"method": str(method).upper(), "url": _full_url(self, url)}
        if needs_approval(HTTP_TOOL, call) and (refused := run.check(HTTP_TOOL, call)) is not None:
            raise ApprovalRefused(refused.removeprefix("ERROR: "))
        # Marked when the request is made rather than when its answer is read: a failed fetch errs on the safe side.
        run.mark_outside(OUTSIDE_CONTENT[HTTP_TOOL])
    _original_putrequest(self, method, url, *args, **kwargs)


class _PauseAwareFuture(Future[T]):
    """A future whose `result(timeout)` does not count the time the run spent waiting for the owner meanwhile."""

    def __init__(self, clock: PauseClock) -> None:
        super().__init__()
        self._clock = clock

    def result(self, timeout: float | None = None) -> T:
        if timeout is None:
            return super().result()
        end = time.monotonic() + timeout
        paused_before = self._clock.seconds()
        while True:
            left = end + (self._clock.seconds() - paused_before) - time.monotonic()
            # While a wait goes on, `left` stands still: wake now and then to see whether it has ended.
            slice_s = max(left, 0.5) if self._clock.waiting else max(left, 0.0)
            try:
                return super().result(timeout=slice_s)
            except TimeoutError:
                if self.done():  # the code's own TimeoutError
                    raise
                if not self._clock.waiting and end + (self._clock.seconds() - paused_before) <= time.monotonic():
                    raise


def _settle(outer: Future[T], inner: Future[T]) -> None:
    if inner.cancelled():
        outer.cancel()
    elif (error := inner.exception()) is not None:
        outer.set_exception(error)
    else:
        outer.set_result(inner.result())


def _as_agent_code(call: Callable[[], T]) -> T:
    _in_agent_code.set(True)  # in the job's own copy of the context only
    return call()


class _RunContextPool(ThreadPoolExecutor):
    """smolagents' pool for the agent's code (local_python_executor.timeout), made to carry the run along.

    Each job runs in a copy of the submitting thread's context (the runner's thread, where `current_run()` is this
    run), marked as the agent's code; within a run, its future's time limit waits again for the time spent waiting
    for the owner.
    """

    approval_guard = True

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()

        def job() -> T:
            return context.run(_as_agent_code, partial(fn, *args, **kwargs))

        inner = super().submit(job)
        run = current_run().approvals
        if run is None:
            return inner
        outer: _PauseAwareFuture[T] = _PauseAwareFuture(run.clock)
        inner.add_done_callback(partial(_settle, outer))
        return outer


_install_lock = threading.Lock()


def install_guards() -> None:
    """Put the guards in place, once per process: smolagents' code pool and http.client's putrequest."""
    with _install_lock:
        pool = getattr(smolagents_executor, "ThreadPoolExecutor", None)
        if getattr(pool, "approval_guard", False):
            return
        if pool is not ThreadPoolExecutor:
            raise RuntimeError(
                "smolagents' local_python_executor no longer runs code through concurrent.futures.ThreadPoolExecutor: "
                "approvals.py must be adapted to the new version"
            )
        smolagents_executor.ThreadPoolExecutor = _RunContextPool  # type: ignore[misc]
        http.client.HTTPConnection.putrequest = _guarded_putrequest  # type: ignore[assignment,method-assign]
