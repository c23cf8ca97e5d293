"""The server as a service of the app: started and stopped from the window or ``hangar serve``, running uvicorn
on its own thread (never the GUI thread), with events for the Server page: state, loaded models, request log.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import HangarError, UsageError
from core.events import EventHook
from core.serve.config import ServeConfig, config_file, load_config, save_config
from core.serve.keys import ApiKeyStore
from core.serve.pool import LoadedSummary, ModelPool
from core.serve.runner import RequestRecord

if TYPE_CHECKING:
    from core.app import AppContext

logger = logging.getLogger(__name__)


class ServerState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class ServeError(HangarError):
    code = "serve"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    auth: bool

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        return f"http://{shown}:{self.port}/v1"


class ServeService:
    """One server per app. ``start`` returns once the socket listens (or raises why it cannot)."""

    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.keys = ApiKeyStore()
        self.config = load_config(config_file(app.paths.config_dir))
        self.state = ServerState.STOPPED
        self.endpoint: Endpoint | None = None
        self.pool: ModelPool | None = None
        self.log: deque[RequestRecord] = deque(maxlen=500)
        self.state_changed: EventHook[[ServerState]] = EventHook()
        self.request_logged: EventHook[[RequestRecord]] = EventHook()
        self.models_changed: EventHook[[]] = EventHook()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- settings -------------------------------------------------------------------------------------------------
    def update_config(self, **changes: Any) -> ServeConfig:
        self.config = self.config.replace(**changes)
        save_config(config_file(self.app.paths.config_dir), self.config)
        if self.pool is not None and "idle_unload_seconds" in changes:
            self.pool.idle_unload_seconds = self.config.idle_unload_seconds
        return self.config

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        api_key: str | None = None,
        memory_budget_bytes: int | None = None,
        timeout: float = 20.0,
    ) -> Endpoint:
        """Listen on ``host:port`` (the saved settings by default). ``api_key`` overrides the stored key."""
        try:
            import uvicorn

            from core.serve.http import ApiContext, build_app
        except ImportError as exc:
            raise ServeError(
                f"The server needs packages that are not installed ({exc.name}).",
                hint="Install them with: pip install 'hangar[serve]' (FastAPI and uvicorn).",
            ) from exc

        with self._lock:
            if self.state != ServerState.STOPPED:
                raise ServeError("The server is already running.")
            config = self.config.replace(
                host=host or self.config.host,
                port=self.config.port if port is None else port,
                memory_budget_bytes=memory_budget_bytes or self.config.memory_budget_bytes,
            )
            key = (api_key or "").strip() or self.keys.get()
            if not config.loopback and not key:
                raise UsageError(
                    f"Listening on {config.host} makes the API reachable from other machines, so it needs an API key.",
                    hint="Set a key (--api-key, or Generate on the Server page), or listen on 127.0.0.1.",
                )
            sock = _bind(config.host, config.port)
            self._set_state(ServerState.STARTING)
        self.pool = ModelPool(
            self.app, memory_budget_bytes=config.memory_budget_bytes, idle_unload_seconds=config.idle_unload_seconds
        )
        self.pool.changed.connect(self.models_changed.emit)
        route_state = ApiContext(self.pool, config, key, self._record)
        server = uvicorn.Server(
            uvicorn.Config(
                build_app(route_state), log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
            )
        )
        self._server = server
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                asyncio.run(self._serve(server, sock, ready))
            except BaseException as exc:  # reported to the starter, or logged if it already returned
                failure.append(exc)
                logger.exception("the server stopped with an error")
            finally:
                ready.set()
                sock.close()
                self.pool = None
                self.endpoint = None
                self._set_state(ServerState.STOPPED)

        self._thread = threading.Thread(target=serve, name="serve", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure or not server.started:
            self.stop()
            reason = f": {failure[0]}" if failure else ""
            raise ServeError(f"The server did not start{reason}.")
        actual_port = sock.getsockname()[1]
        self.endpoint = Endpoint(config.host, actual_port, bool(key))
        self._set_state(ServerState.RUNNING)
        logger.info("serving on %s (API key %s)", self.endpoint.base_url, "required" if key else "not required")
        return self.endpoint

    async def _serve(self, server: Any, sock: socket.socket, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()

        async def announce() -> None:
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.01)
            ready.set()

        watcher = asyncio.create_task(announce())
        await server.serve(sockets=[sock])
        watcher.cancel()

    def stop(self, timeout: float = 15.0) -> None:
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        self._set_state(ServerState.STOPPING)
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5.0)
        self._thread = self._server = self._loop = None
        self._set_state(ServerState.STOPPED)

    @property
    def running(self) -> bool:
        return self.state == ServerState.RUNNING

    # -- for the window -------------------------------------------------------------------------------------------
    def loaded(self) -> list[LoadedSummary]:
        pool = self.pool
        if pool is None:
            return []
        pool.refresh_snapshot()
        return pool.loaded()

    def unload(self, name: str) -> None:
        """Unload a model now (from any thread); returns at once."""
        pool, loop = self.pool, self._loop
        if pool is not None and loop is not None:
            asyncio.run_coroutine_threadsafe(pool.unload(name), loop)

    # -- internals ------------------------------------------------------------------------------------------------
    def _record(self, record: RequestRecord) -> None:
        self.log.append(record)
        logger.info(
            "%s %s %s %d in, %d out, %.1f tok/s, ttft %.0f ms",
            record.status, record.endpoint, record.model, record.prompt_tokens, record.completion_tokens,
            record.tokens_per_second, record.time_to_first_token_ms,
        )  # fmt: skip
        self.request_logged.emit(record)

    def _set_state(self, state: ServerState) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):
            raise ServeError(
                f"Port {port} on {host} is already in use.", hint="Stop the other program or choose another port."
            ) from exc
        raise ServeError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock
