"""What a tool may know about the run it is called in (the chat the turn came from, the files it sends back, the
approvals state), for that run only.

The tool objects are built once per runner and shared by concurrent runs, so nothing of a run is stored on them.
The runner wraps, for each run, the tools that read `current_run()` in a `RunBoundTool` holding that run's
`RunContext`; the wrapper sets the context variable around each call. It is set in the thread that runs the
tool: smolagents executes the agent's code in a worker thread of its own (for its time limit), which a context
variable set in the run's thread would not reach. (The runner also sets it for the whole run in its own thread, and
approvals.py makes smolagents' worker start from a copy of that thread's context, for the agent's own code.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smolagents import Tool

from wrapping import WrappingTool

if TYPE_CHECKING:
    from approvals import RunApprovals
    from outbox import Attachment, Outbox


@dataclass(frozen=True)
class RunContext:
    # Opaque name of the chat the turn came from, given by the gateway; None for cron turns and the console.
    # Owner data: never logged (left out of repr, so a stray log of the context shows nothing of it).
    reply_to: str | None = field(default=None, repr=False)
    # Where send_file records files (the runner's, shared by all runs); None outside a run, where it refuses.
    outbox: Outbox | None = field(default=None, repr=False)
    # This run's files, in the order sent (mutable inside the frozen context: send_file appends, the final event
    # lists them). Never shared between runs: each RunContext gets its own list.
    attachments: list[Attachment] = field(default_factory=list, repr=False)
    # This run's approvals (approvals.py): the mode, the outside content seen first, the approvals asked, the time
    # spent waiting for the owner. None outside a run, where no call is guarded.
    approvals: RunApprovals | None = field(default=None, repr=False)


NO_RUN = RunContext()
_current: ContextVar[RunContext] = ContextVar("current_run", default=NO_RUN)


def current_run() -> RunContext:
    """The context of the run this call belongs to; NO_RUN outside any run."""
    return _current.get()


@contextmanager
def run_context(context: RunContext) -> Iterator[None]:
    """`current_run()` is `context` inside this block, in this thread only."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


class RunBoundTool(WrappingTool):
    """One run's view of a shared tool: the same name, description and inputs, called inside the run's context."""

    def __init__(self, inner: Tool, context: RunContext) -> None:
        super().__init__(inner)
        self._context = context

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with run_context(self._context):
            return self.inner(*args, **kwargs)


def uses_run_context(tool: Tool) -> bool:
    """Whether `tool`, or the tool it wraps (RedactedTool), reads `current_run()`."""
    while True:
        if getattr(tool, "uses_run_context", False) is True:
            return True
        inner = getattr(tool, "inner", None)
        if not isinstance(inner, Tool):
            return False
        tool = inner


def bind_to_run(tools: list[Tool], context: RunContext) -> list[Tool]:
    """The tools for one run: those that read the run's context wrapped with it, the others as they are."""
    return [RunBoundTool(tool, context) if uses_run_context(tool) else tool for tool in tools]
