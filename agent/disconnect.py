"""POST /run's answer, unless its client closes the connection first (the gateway's /stop aborts the request).

/run/stream needs none of this: Starlette cancels a stream whose client has gone, which closes runner.aevents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing

from starlette.types import Receive

from events import AgentEvent, ErrorEvent, FinalEvent

logger = logging.getLogger("agent.http")


async def answer_unless_client_leaves(
    events: AsyncGenerator[AgentEvent, None], receive: Receive
) -> FinalEvent | ErrorEvent | None:
    """The run's final answer or error; None once the client has closed the connection.

    The run is then told to stop (aevents' cleanup has run when this returns): no further model call, and its
    concurrency slot is freed when the agent's thread ends. Call with the request's body already read.
    """
    left = asyncio.create_task(_client_left(receive))
    answer = asyncio.create_task(_answer(events, left))
    try:
        await asyncio.wait((answer, left), return_when=asyncio.FIRST_COMPLETED)
    finally:
        answer.cancel()  # nothing once it has ended
        left.cancel()
        await asyncio.wait((answer, left))
    if answer.cancelled():
        left.result()  # a failure of the watch itself is raised, not taken for the client leaving
        return None
    return answer.result()


def log_client_left(path: str, model: str) -> None:
    logger.info("client_left", extra={"path": path, "model": model})


async def _client_left(receive: Receive) -> None:
    """Returns once the client has closed the connection (as Starlette's StreamingResponse listens for it)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(events: AsyncGenerator[AgentEvent, None], left: asyncio.Task[None]) -> FinalEvent | ErrorEvent | None:
    async with aclosing(events):
        async for event in events:
            if left.done():  # the cancellation lost to an event arriving at the same moment (asyncio.wait_for)
                return None
            if isinstance(event, FinalEvent | ErrorEvent):
                return event
    return ErrorEvent("The agent stopped without an answer; try again.", "no_answer", 502)
