"""The engine interface and the engine host.

A model is loaded and run in a **child process** (multiprocessing, spawn) so that a native abort, a segfault or
an out-of-memory kill ends a generation, not the app. The host is owned by a background thread of the app:
requests go to the child through a queue, and typed events (``ModelLoaded``, ``TokenChunk``, ...) come back and are
announced on ``EngineHost.events``.

The child's code lives in ``backends`` (``backends.worker.serve``); core only knows it as a callable handed in by
the composition root, so core never imports an engine.
"""

from __future__ import annotations

import enum
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import CancelledError, EngineCrashedError, EngineError, error_from_code
from core.events import EventHook
from core.process import describe_exit, terminate

logger = logging.getLogger(__name__)


# -- values that cross the process boundary (plain, picklable dataclasses) ------------------------------------
@dataclass(frozen=True)
class LoadOptions:
    context_length: int = 4096
    #: Number of layers on the GPU; -1 means all. The app resolves "auto" with the estimator before loading.
    gpu_layers: int = 0
    kv_cache_type: str = "f16"
    flash_attention: bool = False
    threads: int | None = None
    lora_path: str | None = None
    seed: int = -1
    #: llama.cpp RPC workers (``host:port``) that take part of the model's layers (``core.remote.rpc``).
    rpc_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoteTarget:
    """A model on an OpenAI-compatible server (``core.remote``): the "remote" engine chats through it."""

    server: str
    url: str
    model: str
    timeout: float = 30.0
    #: Kept out of ``repr`` so that it never reaches a log line.
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ModelSpec:
    engine: str  # "llama" | "mlx" | "remote"
    path: str
    options: LoadOptions = field(default_factory=LoadOptions)
    #: Set for the "remote" engine: where the model runs.
    remote: RemoteTarget | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: "text", "json" (any JSON object) or "json_schema" (with ``json_schema``).
    response_format: str = "text"
    json_schema: dict[str, Any] | None = None
    #: Continue the last assistant message instead of starting a new one.
    continue_last: bool = False
    #: Keep generating past end-of-sequence tokens (benchmarks and tests).
    ignore_eos: bool = False


@dataclass(frozen=True)
class ModelInfo:
    path: str
    engine: str
    context_length: int
    vocab_size: int
    has_chat_template: bool
    #: What the engine really allocated, in bytes, per buffer ("model", "kv", "compute", "output", ...).
    allocated: dict[str, int] = field(default_factory=dict)
    load_seconds: float = 0.0
    device: str = "cpu"


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_ms: float
    tokens_per_second: float  # decode speed, first token excluded
    stop_reason: str  # "stop" | "length" | "cancelled"
    text: str = ""


# requests
@dataclass(frozen=True)
class LoadRequest:
    request_id: int
    spec: ModelSpec


@dataclass(frozen=True)
class GenerateRequest:
    request_id: int
    messages: tuple[ChatMessage, ...]
    params: GenerationParams


@dataclass(frozen=True)
class CountTokensRequest:
    request_id: int
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True)
class UnloadRequest:
    request_id: int


@dataclass(frozen=True)
class ShutdownRequest:
    request_id: int = 0


EngineRequest = LoadRequest | GenerateRequest | CountTokensRequest | UnloadRequest | ShutdownRequest


# events
@dataclass(frozen=True)
class EngineStarted:
    pid: int


@dataclass(frozen=True)
class LoadProgress:
    request_id: int
    fraction: float | None


@dataclass(frozen=True)
class ModelLoaded:
    request_id: int
    info: ModelInfo


@dataclass(frozen=True)
class ModelUnloaded:
    request_id: int


@dataclass(frozen=True)
class TokenChunk:
    request_id: int
    text: str


@dataclass(frozen=True)
class GenerationFinished:
    request_id: int
    stats: GenerationStats


@dataclass(frozen=True)
class TokensCounted:
    request_id: int
    count: int


@dataclass(frozen=True)
class RequestFailed:
    request_id: int
    code: str
    message: str


@dataclass(frozen=True)
class EngineCrashed:
    """The child process ended without being asked to. ``request_id`` is the request it was working on, if any."""

    request_id: int | None
    exitcode: int | None
    message: str


EngineEvent = (
    EngineStarted
    | LoadProgress
    | ModelLoaded
    | ModelUnloaded
    | TokenChunk
    | GenerationFinished
    | TokensCounted
    | RequestFailed
    | EngineCrashed
)


class Engine(Protocol):
    """What a backend implements; it runs inside the child process, one model at a time."""

    def load(self, spec: ModelSpec, progress: Callable[[float | None], None]) -> ModelInfo: ...

    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        emit: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationStats: ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int: ...

    def unload(self) -> None: ...


#: The child's entry point: ``serve(requests, events, cancel_event)``. Supplied by the composition root.
WorkerEntry = Callable[[Any, Any, Any], None]


class EngineState(enum.StrEnum):
    STOPPED = "stopped"
    IDLE = "idle"  # process up, no model
    LOADING = "loading"
    READY = "ready"
    BUSY = "busy"
    CRASHED = "crashed"


class EngineHost:
    """Owns one engine child process and the thread that listens to it. Thread-safe; never blocks the caller
    except in the ``*_blocking`` helpers meant for the CLI and tests."""

    def __init__(self, worker_entry: WorkerEntry, *, name: str = "engine") -> None:
        self._entry = worker_entry
        self._name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._process: Any = None
        self._requests: Any = None
        self._events: Any = None
        self._cancel: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._current: int | None = None  # request the child is working on
        self._waiters: dict[int, _Waiter] = {}
        self.state = EngineState.STOPPED
        self.model: ModelInfo | None = None
        self.events: EventHook[[EngineEvent]] = EventHook()
        self.state_changed: EventHook[[EngineState]] = EventHook()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
            self._requests = self._ctx.Queue()
            self._events = self._ctx.Queue()
            self._cancel = self._ctx.Event()
            self._process = self._ctx.Process(
                target=self._entry,
                args=(self._requests, self._events, self._cancel),
                name=self._name,
                daemon=True,
            )
            self._stopping = False
            self._process.start()
            self.model = None
            self._set_state(EngineState.IDLE)
            self._reader = threading.Thread(
                target=self._read_loop,
                args=(self._process, self._events),
                name=f"{self._name}-reader",
                daemon=True,
            )
            self._reader.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the child: politely, then SIGTERM, then kill."""
        with self._lock:
            process = self._process
            if process is None:
                return
            self._stopping = True
            self._cancel.set()
            try:
                self._requests.put(ShutdownRequest())
            except (OSError, ValueError):
                pass
        process.join(timeout)
        terminate(process)
        if self._reader is not None:
            self._reader.join(2.0)
        with self._lock:
            self._process = None
            self.model = None
            self._set_state(EngineState.STOPPED)
            # anyone still waiting on a request (a token count on a worker thread, say) gets an answer now,
            # instead of blocking until its timeout
            for request_id, waiter in list(self._waiters.items()):
                waiter.finish(RequestFailed(request_id, EngineError.code, "The engine was stopped."))

    def kill(self) -> None:
        """Kill the child at once (what an OOM killer would do). For tests and for "force stop"."""
        with self._lock:
            if self._process is not None and self._process.pid:
                os.kill(self._process.pid, getattr(signal, "SIGKILL", signal.SIGTERM))

    # -- requests -------------------------------------------------------------------------------------------------
    def load(self, spec: ModelSpec) -> int:
        self.start()
        with self._lock:
            request_id = self._send(lambda rid: LoadRequest(rid, spec))
            self.model = None
            self._set_state(EngineState.LOADING)
            return request_id

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> int:
        with self._lock:
            if self.model is None:
                raise EngineError("No model is loaded. Load a model first.")
            request_id = self._send(lambda rid: GenerateRequest(rid, tuple(messages), params))
            self._set_state(EngineState.BUSY)
            return request_id

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        with self._lock:
            if self.model is None:
                raise EngineError("No model is loaded. Load a model first.")
            request_id = self._send(lambda rid: CountTokensRequest(rid, tuple(messages)))
        event = self.wait(request_id, timeout=60)
        assert isinstance(event, TokensCounted)
        return event.count

    def unload(self) -> int | None:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self.model = None
                return None
            return self._send(lambda rid: UnloadRequest(rid))

    def cancel(self, *, grace: float = 3.0) -> None:
        """Stop the current generation or load: cooperatively between tokens, else restart the child."""
        with self._lock:
            if self._process is None or self._current is None:
                return
            self._cancel.set()
            current = self._current
            was_loading = self.state == EngineState.LOADING
        if was_loading:
            # A load cannot be interrupted inside the native library; its result is discarded by restarting.
            self._restart_after(current, "Loading was cancelled.")
            return
        timer = threading.Timer(grace, self._force_cancel, args=(current,))
        timer.daemon = True
        timer.start()

    # -- blocking helpers (CLI, tests) ------------------------------------------------------------------------------
    def wait(self, request_id: int, timeout: float | None = None) -> EngineEvent:
        """Wait for the final event of a request; raise the matching ``HangarError`` if it failed."""
        with self._lock:
            waiter = self._waiters.setdefault(request_id, _Waiter())
        if not waiter.done.wait(timeout):
            raise EngineError(f"The engine did not answer within {timeout:.0f} s.")
        event = waiter.event
        with self._lock:
            self._waiters.pop(request_id, None)
        if isinstance(event, RequestFailed):
            if event.code == CancelledError.code:
                raise CancelledError(event.message)
            raise error_from_code(event.code, event.message)
        if isinstance(event, EngineCrashed):
            raise EngineCrashedError(event.message)
        assert event is not None
        return event

    def load_blocking(self, spec: ModelSpec, timeout: float = 600) -> ModelInfo:
        request_id = self.load(spec)
        event = self.wait(request_id, timeout)
        assert isinstance(event, ModelLoaded)
        return event.info

    def generate_blocking(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        on_chunk: Callable[[str], None] | None = None,
        timeout: float = 3600,
    ) -> GenerationStats:
        request_id = self.generate(messages, params)
        disconnect = None
        if on_chunk is not None:

            def forward(event: EngineEvent) -> None:
                if isinstance(event, TokenChunk) and event.request_id == request_id:
                    on_chunk(event.text)

            disconnect = self.events.connect(forward)
        try:
            event = self.wait(request_id, timeout)
        finally:
            if disconnect:
                disconnect()
        assert isinstance(event, GenerationFinished)
        return event.stats

    # -- internals --------------------------------------------------------------------------------------------------
    def _send(self, make: Callable[[int], EngineRequest]) -> int:
        if self._process is None or not self._process.is_alive():
            raise EngineError("The engine is not running.")
        request_id = next(self._ids)
        self._waiters.setdefault(request_id, _Waiter())
        self._cancel.clear()
        self._current = request_id
        self._requests.put(make(request_id))
        return request_id

    def _set_state(self, state: EngineState) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _force_cancel(self, request_id: int) -> None:
        with self._lock:
            still_running = self._current == request_id and self.state == EngineState.BUSY
        if still_running:
            logger.warning("engine did not stop request %d in time; restarting it", request_id)
            self._restart_after(request_id, "Stopped (the engine had to be restarted).")

    def _restart_after(self, request_id: int, message: str) -> None:
        with self._lock:
            process = self._process
            self._stopping = True
        if process is not None:
            terminate(process, grace=0.5)
        if self._reader is not None:
            self._reader.join(2.0)
        with self._lock:
            self._process = None
            self._current = None
        self._deliver(RequestFailed(request_id, CancelledError.code, message))
        self.start()

    def _read_loop(self, process: Any, events: Any) -> None:
        while True:
            try:
                event = events.get(timeout=0.05)
            except queue.Empty:
                if process.is_alive():
                    continue
                # Drain what the child managed to send before it died.
                try:
                    while True:
                        self._deliver(events.get(timeout=0.05))
                except (queue.Empty, EOFError, OSError):
                    pass
                self._on_exit(process)
                return
            except (EOFError, OSError):
                self._on_exit(process)
                return
            self._deliver(event)

    def _on_exit(self, process: Any) -> None:
        process.join(1.0)
        with self._lock:
            if self._stopping or process is not self._process:
                return
            current = self._current
            self._current = None
            self._process = None
            self.model = None
            message = describe_exit(process.exitcode)
            logger.error("engine process %s ended: %s", process.pid, message)
            self._set_state(EngineState.CRASHED)
        self._deliver(EngineCrashed(current, process.exitcode, message))

    def _deliver(self, event: EngineEvent) -> None:
        final_id: int | None = None
        with self._lock:
            if isinstance(event, ModelLoaded):
                self.model = event.info
                self._set_state(EngineState.READY)
                final_id = event.request_id
            elif isinstance(event, ModelUnloaded):
                self.model = None
                self._set_state(EngineState.IDLE)
                final_id = event.request_id
            elif isinstance(event, (GenerationFinished, TokensCounted)):
                self._set_state(EngineState.READY if self.model else EngineState.IDLE)
                final_id = event.request_id
            elif isinstance(event, RequestFailed):
                if self.state == EngineState.LOADING:
                    self.model = None
                self._set_state(EngineState.READY if self.model else EngineState.IDLE)
                final_id = event.request_id
            elif isinstance(event, EngineCrashed):
                final_id = event.request_id
                for waiter in self._waiters.values():  # everything pending fails with the crash
                    waiter.finish(event)
            if final_id is not None:
                if self._current == final_id:
                    self._current = None
                self._waiters.setdefault(final_id, _Waiter()).finish(event)
        self.events.emit(event)


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.event: EngineEvent | None = None

    def finish(self, event: EngineEvent) -> None:
        if not self.done.is_set():
            self.event = event
            self.done.set()
