"""The ASGI application: routes of the three APIs, the key check, body and CORS limits, errors as JSON.

``ApiContext`` is what the routes share: the pool, the settings, the key and the request log callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import HangarError
from core.serve.config import ServeConfig
from core.serve.errors import ApiError, body_for, from_hangar
from core.serve.keys import key_matches
from core.serve.pool import ModelPool
from core.serve.runner import RequestRecord

logger = logging.getLogger(__name__)


@dataclass
class ApiContext:
    pool: ModelPool
    config: ServeConfig
    api_key: str | None
    record: Callable[[RequestRecord], None]


def build_app(state: ApiContext) -> FastAPI:
    from core.serve import anthropic_api, openai_api, responses_api

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_idle_unloader(state.pool))
        try:
            yield
        finally:
            task.cancel()
            await state.pool.close()

    app = FastAPI(title="Hangar", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.hangar = state
    app.include_router(openai_api.router)
    app.include_router(anthropic_api.router)
    app.include_router(responses_api.router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, ApiError(400, describe_validation(exc.errors()), param=_first_param(exc)))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(HangarError)
    async def hangar_error(request: Request, exc: HangarError) -> JSONResponse:
        return error_response(request, from_hangar(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request to %s failed", request.url.path)
        return error_response(request, ApiError(500, f"The server failed: {type(exc).__name__}.", kind="server_error"))

    asgi: ASGIApp = app
    if state.config.cors_origins:
        asgi = CORSMiddleware(
            asgi, allow_origins=list(state.config.cors_origins), allow_methods=["*"], allow_headers=["*"]
        )
    return _Guard(asgi, state)  # type: ignore[return-value]


def error_response(request: Request, error: ApiError) -> JSONResponse:
    anthropic = request.url.path.startswith("/v1/messages")
    return JSONResponse(body_for(error, anthropic=anthropic), status_code=error.status)


def describe_validation(errors: Any) -> str:
    parts = []
    for error in list(errors)[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        if error.get("type") == "json_invalid":
            return "The request body is not valid JSON."
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) + "."


def _first_param(exc: RequestValidationError) -> str | None:
    errors = exc.errors()
    if not errors:
        return None
    return ".".join(str(p) for p in errors[0].get("loc", ()) if p != "body") or None


async def _idle_unloader(pool: ModelPool) -> None:
    while True:
        ttl = pool.idle_unload_seconds
        await asyncio.sleep(min(max(ttl / 4, 0.05), 30.0) if ttl > 0 else 30.0)
        try:
            await pool.unload_idle()
            pool.refresh_snapshot()
        except Exception:
            logger.exception("idle unload failed")


class _BodyTooLarge(Exception):
    pass


class _Guard:
    """Pure ASGI (no buffering, no extra task per request): the API key and the body size limit."""

    def __init__(self, app: ASGIApp, state: ApiContext) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        anthropic = scope.get("path", "").startswith("/v1/messages")
        if scope.get("method") != "OPTIONS" and self.state.api_key and not self._authorised(scope):
            message = "Missing or wrong API key: send it as 'Authorization: Bearer KEY' (or 'x-api-key: KEY')."
            await _send_json(send, ApiError(401, message, kind="authentication_error"), anthropic)
            return
        limit = self.state.config.max_body_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = ApiError(413, f"The request body is larger than the limit of {limit // 1024} KiB.")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, too_large, anthropic)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, too_large, anthropic)

    def _authorised(self, scope: Scope) -> bool:
        expected = self.state.api_key or ""
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                text = value.decode("latin-1")
                if text.lower().startswith("bearer ") and key_matches(text[7:].strip(), expected):
                    return True
            elif name == b"x-api-key" and key_matches(value.decode("latin-1").strip(), expected):
                return True
        return False


async def _send_json(send: Send, error: ApiError, anthropic: bool) -> None:
    body = json.dumps(body_for(error, anthropic=anthropic)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EventStream(StreamingResponse):
    """Server-sent events that stop (and cancel the generation) as soon as the client goes away, whatever ASGI
    version the server speaks: the body is streamed while another task listens for the disconnect."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None] | None = None) -> None:
        super().__init__(content, headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import anyio

        iterator = self.body_iterator
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                async def listen() -> None:
                    await self.listen_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(listen)
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            if self._on_close is not None:
                self._on_close()


def sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
