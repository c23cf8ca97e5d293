"""MCP servers as the model's tools, through the official ``mcp`` SDK: each server runs on demand in the
background (one task on a private event loop thread), lists its tools and answers calls with a time limit; servers
are stopped with the app. A server that does not start, times out or speaks garbage is reported in one line and
the others go on."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import HangarError
from core.tools.config import McpServerConfig

logger = logging.getLogger(__name__)

#: Longest tool result handed to a model (characters); the rest is cut with a note.
MAX_RESULT_CHARS = 16_000


class ToolError(HangarError):
    code = "tool"


@dataclass(frozen=True)
class ToolSpec:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]

    @property
    def qualified(self) -> str:
        """The name a model sees: ``server__tool`` unless the tool name is unique (see ``McpTools.catalogue``)."""
        return f"{self.server}__{self.name}"

    def openai(self, name: str | None = None) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": name or self.name,
                "description": self.description[:1000],
                "parameters": self.input_schema or {"type": "object", "properties": {}},
            },
        }


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool
    seconds: float


@dataclass(frozen=True)
class ServerTools:
    server: str
    transport: str
    tools: tuple[ToolSpec, ...] = ()
    error: str | None = None


class McpTools:
    """The servers of one ``mcp.json``: started when first used, stopped by ``close()``."""

    def __init__(self, configs: list[McpServerConfig]) -> None:
        self.configs = {c.name: c for c in configs}
        self._portal: Any = None
        self._portal_cm: Any = None
        self._sessions: dict[str, _Connection] = {}
        self._lock = threading.Lock()

    # -- public --------------------------------------------------------------------------------------------------
    def list_all(self) -> list[ServerTools]:
        results = []
        for name, config in self.configs.items():
            try:
                tools = self.tools_of(name)
                results.append(ServerTools(name, config.transport, tuple(tools)))
            except HangarError as exc:
                results.append(ServerTools(name, config.transport, error=str(exc)))
        return results

    def tools_of(self, server: str) -> list[ToolSpec]:
        connection = self._connection(server)
        return connection.call(lambda session: _list_tools(server, session))

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> ToolResult:
        import time

        connection = self._connection(server)
        started = time.monotonic()
        result = connection.call(lambda session: session.call_tool(tool, arguments))
        text = "\n".join(_content_text(block) for block in (getattr(result, "content", None) or []))
        if not text and getattr(result, "structured_content", None) is not None:
            import json

            text = json.dumps(result.structured_content, ensure_ascii=False)
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + f"\n[… cut: the result was {len(text):,} characters]"
        return ToolResult(text, bool(getattr(result, "is_error", False)), time.monotonic() - started)

    def close(self) -> None:
        with self._lock:
            connections, self._sessions = list(self._sessions.values()), {}
            portal_cm, self._portal, self._portal_cm = self._portal_cm, None, None
        for connection in connections:
            connection.stop()
        if portal_cm is not None:
            try:
                portal_cm.__exit__(None, None, None)
            except Exception as exc:  # a server that will not stop must not keep the app from closing
                logger.warning("MCP servers did not all stop cleanly: %s", type(exc).__name__)

    # -- internals -----------------------------------------------------------------------------------------------
    def _connection(self, server: str) -> _Connection:
        if server not in self.configs:
            known = ", ".join(self.configs) or "none"
            raise ToolError(f"No MCP server called {server!r} (configured: {known}).")
        with self._lock:
            if self._portal is None:
                from anyio.from_thread import start_blocking_portal

                self._portal_cm = start_blocking_portal()
                self._portal = self._portal_cm.__enter__()
            connection = self._sessions.get(server)
            if connection is None or not connection.alive:
                connection = _Connection(self.configs[server], self._portal)
                self._sessions[server] = connection
        connection.ensure_started()
        return connection


class _Connection:
    """One server's session, owned by one task on the portal's loop (anyio's cancel scopes stay in their task)."""

    def __init__(self, config: McpServerConfig, portal: Any) -> None:
        self.config = config
        self._portal = portal
        self._send: Any = None
        self._started = threading.Event()
        self._failure: str | None = None
        self._done = threading.Event()
        self._task: Any = None

    @property
    def alive(self) -> bool:
        return not self._done.is_set()

    def ensure_started(self) -> None:
        if self._task is None:
            self._task = self._portal.start_task_soon(self._run)
        wait = self.config.startup_timeout
        if not self._started.wait(wait):
            self.stop()
            raise ToolError(f'The MCP server "{self.config.name}" did not start within {wait:.0f} s.')
        if self._failure:
            raise ToolError(self._failure)

    def call(self, operation: Callable[[Any], Any]) -> Any:
        reply: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            self._portal.call(self._send.send, (operation, reply))
        except Exception:
            raise ToolError(f'The MCP server "{self.config.name}" has stopped.') from None
        try:
            return reply.result(self.config.timeout + 1)
        except concurrent.futures.TimeoutError:
            raise ToolError(
                f'The MCP server "{self.config.name}" did not answer within {self.config.timeout:.0f} s.'
            ) from None

    def stop(self) -> None:
        send = self._send
        if send is not None and self.alive:
            try:
                self._portal.call(send.aclose)
            except Exception:
                pass
        self._done.wait(5)

    async def _run(self) -> None:
        import anyio

        send, receive = anyio.create_memory_object_stream[tuple[Any, Any]](16)
        self._send = send
        name = self.config.name
        try:
            async with _open_session(self.config) as session:
                with anyio.fail_after(self.config.startup_timeout):
                    await session.initialize()
                self._started.set()
                async with receive:
                    async for operation, reply in receive:
                        try:
                            with anyio.fail_after(self.config.timeout):
                                reply.set_result(await operation(session))
                        except TimeoutError:
                            reply.set_exception(
                                ToolError(f'The MCP server "{name}" did not answer within {self.config.timeout:.0f} s.')
                            )
                        except HangarError as exc:
                            reply.set_exception(exc)
                        except Exception as exc:
                            reply.set_exception(ToolError(f'The MCP server "{name}" failed: {_short(exc)}'))
        except Exception as exc:
            self._failure = f'The MCP server "{name}" did not start or stopped: {_short(exc)}'
            logger.info("%s", self._failure)
        finally:
            self._started.set()
            self._done.set()


def _open_session(config: McpServerConfig) -> Any:
    from contextlib import asynccontextmanager

    from mcp import ClientSession

    @asynccontextmanager
    async def opened() -> Any:
        if config.command:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env) or None)
            with open(os.devnull, "w") as quiet:  # a server's own log lines must not reach our stdout/JSON
                errlog = quiet if not logger.isEnabledFor(logging.DEBUG) else sys.stderr
                async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                    yield session
        else:
            from mcp.client.streamable_http import streamable_http_client

            client = None
            if config.headers:
                import httpx2  # the SDK's HTTP client

                client = httpx2.AsyncClient(headers=config.headers, timeout=config.timeout)
            async with streamable_http_client(str(config.url), http_client=client) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    yield session

    return opened()


async def _list_tools(server: str, session: Any) -> list[ToolSpec]:
    result = await session.list_tools()
    specs = []
    for tool in result.tools:
        schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {}
        specs.append(ToolSpec(server, str(tool.name), str(tool.description or ""), dict(schema)))
    return specs


def _content_text(block: Any) -> str:
    text = getattr(block, "text", None)
    if isinstance(text, str):
        return text
    kind = getattr(block, "type", "content")
    return f"[{kind} content]"


def _short(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _short(exc.exceptions[0])
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
