"""The agent service: FastAPI routes over the one event generator in runner.py."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from disconnect import answer_unless_client_leaves, log_client_left
from errors import ServiceError
from events import AgentEvent, ErrorEvent, FinalEvent, event_payload
from factory import build_runner, settings_or_exit
from history import Turn
from logs import configure_logging, request_id_var
from media import save_images
from runner import AgentRunner, RunRequest
from schemas import MAX_IMAGES, RUN_ERRORS, ErrorBody, RunBody
from settings import Settings, get_settings
from tools import tool_availability

logger = logging.getLogger("agent.http")
FILE_CHUNK_BYTES = 256 * 1024
_KEY_IN_QUERY = re.compile(rb"(?:^|&)(?:key|api_key|apikey|token|access_token)=", re.IGNORECASE)


def get_runner(request: Request) -> AgentRunner:
    runner: AgentRunner = request.app.state.runner
    return runner


RunnerDep = Annotated[AgentRunner, Depends(get_runner)]


class AccessMiddleware:
    """Request id, bearer-key check (every path but /health), body size, and one metadata-only log line per request."""

    def __init__(self, app: ASGIApp, settings: Settings, max_body: int) -> None:
        self.app = app
        self.key = settings.api_key.encode() if settings.api_key else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        started = time.monotonic()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            refusal = self._refusal(scope["path"], scope.get("query_string", b""), headers)
            if refusal is not None:
                await refusal(scope, receive, send_with_status)
            else:
                await self.app(scope, self._limited(receive), send_with_status)
        finally:
            logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            request_id_var.reset(token)

    def _refusal(self, path: str, query: bytes, headers: dict[bytes, bytes]) -> JSONResponse | None:
        if self.key is not None and path != "/health" and not self._authorised(headers):
            # A key in the URL ends up in proxies' logs and shell history: it is never accepted there.
            in_url = " A key in the URL is never accepted." if _KEY_IN_QUERY.search(query) else ""
            return JSONResponse(
                {
                    "error": f"Missing or wrong API key: send `Authorization: Bearer <AGENT_API_KEY>`.{in_url}",
                    "code": "unauthorized",
                },
                status_code=401,
            )
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            return JSONResponse({"error": self._too_large, "code": "too_large"}, status_code=413)
        return None

    @property
    def _too_large(self) -> str:
        return f"Request body over {self.max_body} bytes; send fewer or smaller images."

    def _limited(self, receive: Receive) -> Receive:
        """Count a body sent without Content-Length (chunked) as it is read; FastAPI turns the 413 into JSON."""
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise StarletteHTTPException(413, self._too_large)
            return message

        return limited_receive

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, supplied = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and self.key is not None and hmac.compare_digest(supplied.strip(), self.key)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.redactor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.check_startup()
        app.state.runner = await asyncio.to_thread(build_runner, settings)
        logger.info(
            "agent_ready",
            extra={
                "tools": [t.name for t in app.state.runner.tools],
                "ollama": app.state.runner.registry.state.reachable,
            },
        )
        yield

    # Base64 makes an image a third bigger; a little room for the message and history on top.
    max_body = MAX_IMAGES * settings.agent_max_image_bytes * 4 // 3 + 2 * 1024 * 1024
    app = FastAPI(title="my-claw agent", version="0.1.0", lifespan=lifespan)
    app.add_middleware(AccessMiddleware, settings=settings, max_body=max_body)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        body = exc.to_dict()
        body["error"] = settings.redactor.redact(body["error"])
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse(
            {"error": "Invalid request: " + "; ".join(problems), "code": "invalid_request"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "code": f"http_{exc.status_code}"}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled_error", extra={"error_type": type(exc).__name__})
        return JSONResponse({"error": "Internal error; see the agent's log.", "code": "internal"}, status_code=500)

    def to_run_request(body: RunBody) -> RunRequest:
        paths = save_images(body.images, settings.media_dir, settings.agent_max_image_bytes) if body.images else []
        return RunRequest(
            message=body.message,
            history=[Turn(h.role, h.content) for h in body.history],
            model=body.model,
            system_prompt=body.system_prompt,
            image_paths=paths,
            request_id=request_id_var.get(),
            reply_to=body.reply_to or None,
            turn_ref=body.turn_ref or None,
            attended=body.attended,
        )

    def log_outcome(event: AgentEvent, model: str) -> None:
        if isinstance(event, FinalEvent):
            logger.info(
                "run_done",
                extra={
                    "model": event.model,
                    "steps": event.steps,
                    "duration_ms": event.duration_ms,
                    "status": "ok",
                    "attachments": len(event.attachments),
                    "approvals": len(event.approvals),
                    **event.usage,
                },
            )
        elif isinstance(event, ErrorEvent):
            logger.warning("run_failed", extra={"model": model, "status": event.code})

    def tool_state(runner: AgentRunner) -> dict[str, object]:
        return {"tools": [tool.name for tool in runner.tools], "tools_unavailable": tool_availability(settings)}

    @app.get("/health")
    async def health(runner: RunnerDep) -> dict[str, Any]:
        state = await asyncio.to_thread(runner.registry.refresh)
        return {
            "status": "ok",
            "ollama": "ok" if state.reachable else "down",
            "models": len(state.installed),
            **tool_state(runner),
        }

    @app.get("/models", responses={401: {"model": ErrorBody}})
    async def models(runner: RunnerDep) -> dict[str, object]:
        return {**await asyncio.to_thread(runner.registry.describe), **tool_state(runner)}

    @app.post("/run", responses=RUN_ERRORS)
    async def run(body: RunBody, runner: RunnerDep, request: Request) -> Response:
        prepared = await asyncio.to_thread(runner.prepare, to_run_request(body))
        events = runner.aevents(prepared, settings.agent_timeout_s)
        event = await answer_unless_client_leaves(events, request.receive)
        if event is None:  # nobody to answer: 499 is nginx's "client closed request", for the request log
            log_client_left("/run", prepared.resolved.model_id)
            return Response(status_code=499)
        log_outcome(event, prepared.resolved.model_id)
        status = event.status if isinstance(event, ErrorEvent) else 200
        return JSONResponse(event_payload(event), status_code=status)

    @app.get(
        "/files/{file_id}",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            401: {"model": ErrorBody},
            404: {"model": ErrorBody},
        },
    )
    async def sent_file(file_id: str, runner: RunnerDep) -> Response:
        """A file a run sent back (send_file; its id is in the final event's `attachments`), checked again now."""
        opened = await asyncio.to_thread(runner.outbox.open, file_id)
        if opened is None:
            return JSONResponse(
                {
                    "error": "No such file: the id is unknown or expired (files are kept AGENT_ATTACHMENT_TTL_S "
                    "seconds, until the agent restarts), or the file was moved, changed or swapped since.",
                    "code": "not_found",
                },
                status_code=404,
            )
        entry, file, size = opened
        logger.info("file_sent", extra={"mime": entry.mime, "size": size})
        name = quote(settings.redactor.redact(entry.name), safe="")
        headers = {
            "Content-Type": entry.mime,
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(_read_chunks(file, size), headers=headers)

    # The schema would otherwise say application/json (FastAPI's `response_class=EventSourceResponse` would also
    # change how the route is called).
    @app.post(
        "/run/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **RUN_ERRORS},
    )
    async def run_stream(body: RunBody, runner: RunnerDep) -> StreamingResponse:
        prepared = await asyncio.to_thread(runner.prepare, to_run_request(body))

        async def sse() -> AsyncIterator[bytes]:
            ended = False
            try:
                async for event in runner.aevents(prepared, settings.agent_timeout_s):
                    log_outcome(event, prepared.resolved.model_id)
                    ended = isinstance(event, FinalEvent | ErrorEvent)
                    yield format_sse_event(event=event.name, data_str=_json(event_payload(event)))
            except (asyncio.CancelledError, GeneratorExit):  # Starlette cancels the stream once its client has gone
                if not ended:
                    log_client_left("/run/stream", prepared.resolved.model_id)
                raise

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


async def _read_chunks(file: BinaryIO, size: int) -> AsyncIterator[bytes]:
    """The `size` bytes of an opened file (no more, if it grows meanwhile), read off the event loop; then closed."""
    try:
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(file.read, min(FILE_CHUNK_BYTES, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        file.close()


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn main:app` works, while importing this module (tests, `python main.py`) reads no settings yet.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)


def serve() -> None:
    settings = settings_or_exit()
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.agent_host, port=settings.agent_port, log_config=None)


if __name__ == "__main__":
    serve()
