"""The engine host: one engine child process, one queue of requests, exactly one of them running.

A model is loaded and run in a **child process** (``core.process.ChildProcess``, spawn) so that a native abort, a
segfault or an out-of-memory kill ends a generation, not the app. Requests wait in a FIFO and go to the child one at
a time, so the host always knows which request the child works on: a second conversation's message is answered after
the first (never a time-out), a cancel reaches the right request, and each request's bookkeeping ends with it.

A native crash while loading or generating is retried in safe mode (``core.engine.safemode``): the host restarts the
child with one more risky feature off, runs the request again, tells listeners (``EngineRecovering``) and remembers
what worked. Typed events (``ModelLoaded``, ``TokenChunk``, ...) are announced on ``EngineHost.events`` from the
host's reader thread, never while the host's lock is held.

The child's code lives in ``backends`` (``backends.worker.serve``); core only knows it as a callable handed in by
the composition root, so core never imports an engine.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from core.engine.pending import PendingRequest
from core.engine.protocol import (
    ChatMessage,
    CompletionRequest,
    CountTokensRequest,
    EmbeddingsReady,
    EmbedRequest,
    Engine,
    EngineCrashed,
    EngineEvent,
    EngineRecovering,
    EngineRequest,
    EngineStarted,
    GenerateRequest,
    GenerationFinished,
    GenerationParams,
    GenerationStats,
    LoadOptions,
    LoadProgress,
    LoadRequest,
    ModelInfo,
    ModelLoaded,
    ModelSpec,
    ModelUnloaded,
    RequestFailed,
    ShutdownRequest,
    TokenChunk,
    TokenLogprob,
    TokensCounted,
    UnloadRequest,
    WorkerEntry,
)
from core.engine.safemode import ENGINES, SafeModeBook, safe_steps
from core.errors import CancelledError, EngineCrashedError, EngineError, error_from_code
from core.events import EventHook
from core.process import ChildProcess, describe_exit, is_native_crash

# The values and events are defined in ``core.engine.protocol``; they stay importable from here for callers.
__all__ = [
    "ChatMessage",
    "CompletionRequest",
    "CountTokensRequest",
    "EmbedRequest",
    "EmbeddingsReady",
    "Engine",
    "EngineCrashed",
    "EngineEvent",
    "EngineHost",
    "EngineRecovering",
    "EngineRequest",
    "EngineStarted",
    "EngineState",
    "GenerateRequest",
    "GenerationFinished",
    "GenerationParams",
    "GenerationStats",
    "LoadOptions",
    "LoadProgress",
    "LoadRequest",
    "ModelInfo",
    "ModelLoaded",
    "ModelSpec",
    "ModelUnloaded",
    "RequestFailed",
    "ShutdownRequest",
    "TokenChunk",
    "TokenLogprob",
    "TokensCounted",
    "UnloadRequest",
    "WorkerEntry",
]

logger = logging.getLogger(__name__)

#: How many finished requests keep their outcome for a late ``wait`` (bounded: nothing grows per request).
KEEP_FINISHED = 64

_FINAL = (ModelLoaded, ModelUnloaded, GenerationFinished, TokensCounted, RequestFailed, EmbeddingsReady)


class EngineState(enum.StrEnum):
    STOPPED = "stopped"
    IDLE = "idle"  # process up, no model
    LOADING = "loading"
    READY = "ready"
    BUSY = "busy"
    CRASHED = "crashed"


Outbox = list[Callable[[], None]]


class EngineHost:
    """Owns one engine child process and its request queue. Thread-safe; never blocks the caller except in
    ``count_tokens``, ``wait`` and the ``*_blocking`` helpers meant for worker threads, the CLI and tests."""

    def __init__(
        self, worker_entry: WorkerEntry, *, name: str = "engine", safe_modes: SafeModeBook | None = None
    ) -> None:
        self._entry = worker_entry
        self._name = name
        self.safe_modes = safe_modes
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._child: ChildProcess | None = None
        self._queue: deque[PendingRequest] = deque()
        self._running: PendingRequest | None = None
        self._open: dict[int, PendingRequest] = {}
        self._finished: OrderedDict[int, EngineEvent] = OrderedDict()
        self._loaded: PendingRequest | None = None  # the load whose model the child holds
        self.state = EngineState.STOPPED
        self.model: ModelInfo | None = None
        self.events: EventHook[[EngineEvent]] = EventHook()
        self.state_changed: EventHook[[EngineState]] = EventHook()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None else None

    @property
    def outstanding(self) -> int:
        """Requests queued or running (each is forgotten once it ends, whether or not anyone waited)."""
        with self._lock:
            return len(self._open)

    def start(self) -> None:
        out: Outbox = []
        with self._lock:
            if self._child is None or not self._child.is_alive():
                self._spawn(out)
        _run(out)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the child: politely, then SIGINT, SIGTERM, kill. Whatever was pending fails at once."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop(goodbye=ShutdownRequest(), timeout=timeout)
        out: Outbox = []
        with self._lock:
            pending = ([self._running] if self._running else []) + list(self._queue)
            self._running = None
            self._queue.clear()
            self.model, self._loaded = None, None
            for request in pending:
                self._complete(request, RequestFailed(request.id, EngineError.code, "The engine was stopped."), out)
            self._set_state(EngineState.STOPPED, out)
        _run(out)

    def kill(self) -> None:
        """Kill the child at once (what an OOM killer would do). For tests and for "force stop"."""
        with self._lock:
            child = self._child
        if child is not None:
            child.kill()

    # -- requests -------------------------------------------------------------------------------------------------
    def load(self, spec: ModelSpec) -> int:
        level, changes, reason = self.safe_modes.starting_step(spec) if self.safe_modes else (0, (), "")
        out: Outbox = []
        with self._lock:
            request = self._new(LoadRequest(next(self._ids), spec), spec=spec, level=level)
            request.changes, request.reason = changes, reason
            self.model = None
            self._enqueue(request, out)
            self._set_state(EngineState.LOADING, out)
        _run(out)
        return request.id

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> int:
        return self._generate(next(self._ids), messages, params)

    def complete(self, prompt: str, params: GenerationParams) -> int:
        """Continue a raw prompt (no chat template); events as for ``generate``."""
        out: Outbox = []
        with self._lock:
            self._require_model()
            request = self._new(CompletionRequest(next(self._ids), prompt, params))
            self._enqueue(request, out)
        _run(out)
        return request.id

    def embed(self, texts: Sequence[str]) -> int:
        """Embed texts; the answer is an ``EmbeddingsReady`` event."""
        out: Outbox = []
        with self._lock:
            self._require_model()
            request = self._new(EmbedRequest(next(self._ids), tuple(texts)))
            self._enqueue(request, out)
        _run(out)
        return request.id

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        out: Outbox = []
        with self._lock:
            self._require_model()
            request = self._new(CountTokensRequest(next(self._ids), tuple(messages)))
            self._enqueue(request, out)
        _run(out)
        # No time limit: the request is answered after those ahead of it, or fails with a crash or a shutdown.
        event = self.wait(request.id)
        assert isinstance(event, TokensCounted)
        return event.count

    def unload(self) -> int | None:
        out: Outbox = []
        with self._lock:
            if self._child is None or not self._child.is_alive():
                self.model = None
                return None
            request = self._new(UnloadRequest(next(self._ids)))
            self._enqueue(request, out)
        _run(out)
        return request.id

    def cancel(self, request_id: int | None = None, *, grace: float = 3.0) -> None:
        """Stop a request: a queued one is dropped; the running one (the default) stops between tokens, else the
        child is restarted; a load cannot be interrupted inside the native library, so it is discarded by
        restarting the child."""
        out: Outbox = []
        with self._lock:
            running = self._running
            if request_id is not None and (running is None or running.id != request_id):
                queued = next((r for r in self._queue if r.id == request_id), None)
                if queued is not None:
                    self._queue.remove(queued)
                    self._complete(queued, RequestFailed(queued.id, CancelledError.code, "Cancelled."), out)
                    if isinstance(queued.request, LoadRequest) and self._running is None:
                        self._settle(out)
            elif running is not None and self._child is not None:
                self._child.request_cancel()
            else:
                running = None
        _run(out)
        if running is None or (request_id is not None and running.id != request_id):
            return
        if isinstance(running.request, LoadRequest):
            self._restart_after(running, "Loading was cancelled.")
            return
        timer = threading.Timer(grace, self._force_cancel, args=(running,))
        timer.daemon = True
        timer.start()

    # -- blocking helpers (worker threads, CLI, tests) ------------------------------------------------------------
    def wait(self, request_id: int, timeout: float | None = None) -> EngineEvent:
        """Wait for the final event of a request; raise the matching ``HangarError`` if it failed."""
        with self._lock:
            request = self._open.get(request_id)
            event = self._finished.get(request_id) if request is None else None
        if request is not None:
            if not request.done.wait(timeout):
                raise EngineError(f"The engine did not answer within {timeout or 0:.0f} s.")
            event = request.outcome
        if event is None:
            raise EngineError(f"The engine has no request {request_id} (it ended long ago or never existed).")
        if isinstance(event, RequestFailed):
            if event.code == CancelledError.code:
                raise CancelledError(event.message)
            raise error_from_code(event.code, event.message)
        if isinstance(event, EngineCrashed):
            raise EngineCrashedError(event.message)
        return event

    def load_blocking(self, spec: ModelSpec, timeout: float = 600) -> ModelInfo:
        event = self.wait(self.load(spec), timeout)
        assert isinstance(event, ModelLoaded)
        return event.info

    def generate_blocking(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        on_chunk: Callable[[str], None] | None = None,
        timeout: float = 3600,
    ) -> GenerationStats:
        request_id = next(self._ids)
        disconnect = None
        if on_chunk is not None:

            def forward(event: EngineEvent) -> None:
                if isinstance(event, TokenChunk) and event.request_id == request_id:
                    on_chunk(event.text)

            disconnect = self.events.connect(forward)
        try:
            event = self.wait(self._generate(request_id, messages, params), timeout)
        finally:
            if disconnect:
                disconnect()
        assert isinstance(event, GenerationFinished)
        return event.stats

    # -- internals: the queue -------------------------------------------------------------------------------------
    def _generate(self, request_id: int, messages: Sequence[ChatMessage], params: GenerationParams) -> int:
        out: Outbox = []
        with self._lock:
            self._require_model()
            self._enqueue(self._new(GenerateRequest(request_id, tuple(messages), params)), out)
        _run(out)
        return request_id

    def _require_model(self) -> None:
        """A model is loaded, or a load is on its way (requests behind it run on that model)."""
        ahead = [self._running, *self._queue] if self._running else list(self._queue)
        if self.model is None and not any(isinstance(r.request, LoadRequest) for r in ahead):
            raise EngineError("No model is loaded. Load a model first.")

    def _new(self, request: EngineRequest, **fields: object) -> PendingRequest:
        item = PendingRequest(request, threading.Event(), **fields)  # type: ignore[arg-type]
        self._open[item.id] = item
        return item

    def _enqueue(self, request: PendingRequest, out: Outbox) -> None:
        self._queue.append(request)
        self._dispatch(out)

    def _dispatch(self, out: Outbox) -> None:
        """Send the next request if none is running (lock held)."""
        while self._running is None and self._queue:
            head = self._queue[0]
            if self._child is None or not self._child.is_alive():
                if not isinstance(head.request, LoadRequest):
                    self._queue.popleft()
                    message = "No model is loaded. Load a model first."
                    self._complete(head, RequestFailed(head.id, EngineError.code, message), out)
                    continue
                self._spawn(out)
            assert self._child is not None
            self._queue.popleft()
            self._running = head
            self._child.clear_cancel()
            if isinstance(head.request, LoadRequest):
                self.model = None
                self._set_state(EngineState.LOADING, out)
            elif isinstance(head.request, GenerateRequest):
                self._set_state(EngineState.BUSY, out)
            try:
                self._child.send(head.to_send())
            except (OSError, ValueError) as exc:  # the queue is gone: the child died; its exit is handled there
                logger.warning("could not send request %d: %s", head.id, exc)

    def _spawn(self, out: Outbox) -> None:
        holder: list[ChildProcess] = []
        child = ChildProcess(
            self._entry,
            name=self._name,
            on_event=lambda event: self._on_child_event(holder[0], event),
            on_exit=lambda code, expected: self._on_child_exit(holder[0], code, expected),
        )
        holder.append(child)
        child.start()
        self._child = child
        self.model = None
        self._set_state(EngineState.IDLE, out)

    def _complete(self, request: PendingRequest, event: EngineEvent, out: Outbox, *, announce: bool = True) -> None:
        """A request ended: record its outcome, forget its bookkeeping, announce it (lock held)."""
        request.outcome = event
        self._finished[request.id] = event
        while len(self._finished) > KEEP_FINISHED:
            self._finished.popitem(last=False)
        if announce:
            out.append(partial(self.events.emit, event))
        out.append(partial(self._forget, request))

    def _forget(self, request: PendingRequest) -> None:
        """The request's last act, after its records and listeners: wake its waiters, drop its bookkeeping."""
        with self._lock:
            self._open.pop(request.id, None)
        request.done.set()

    def _settle(self, out: Outbox) -> None:
        if self._running is None:
            self._set_state(EngineState.READY if self.model else EngineState.IDLE, out)

    def _set_state(self, state: EngineState, out: Outbox) -> None:
        if state != self.state:
            self.state = state
            out.append(partial(self.state_changed.emit, state))

    # -- internals: what the child says ---------------------------------------------------------------------------
    def _on_child_event(self, child: ChildProcess, event: EngineEvent) -> None:
        out: Outbox = []
        with self._lock:
            if child is not self._child:
                return  # a child being replaced: its last words are void
            running = self._running
            if isinstance(event, _FINAL):
                if running is None or event.request_id != running.id:
                    logger.warning("engine answered request %s, which is not running", event.request_id)
                    return
                self._finish_running(running, event, out)
            elif isinstance(event, (TokenChunk, LoadProgress)):
                if running is not None and event.request_id == running.id:
                    out.append(partial(self.events.emit, event))
            else:
                out.append(partial(self.events.emit, event))
        _run(out)

    def _finish_running(self, request: PendingRequest, event: EngineEvent, out: Outbox) -> None:
        self._running = None
        if isinstance(event, ModelLoaded):
            info = event.info
            if request.level:
                info = replace(info, safe_mode=request.changes, safe_mode_reason=request.reason)
                event = ModelLoaded(event.request_id, info)
                if request.discovered:
                    out.append(partial(self._remember, request, runs=True))
            self.model, self._loaded = info, request
        elif isinstance(event, ModelUnloaded):
            self.model, self._loaded = None, None
        elif isinstance(event, RequestFailed):
            if isinstance(request.request, LoadRequest):
                self.model, self._loaded = None, None
            if request.retry_of is not None:  # the reload made for a generate failed: so does the generate
                self._drop_queued(request.retry_of, RequestFailed(request.retry_of.id, event.code, event.message), out)
        self._complete(request, event, out)
        self._settle(out)
        self._dispatch(out)

    def _on_child_exit(self, child: ChildProcess, exitcode: int | None, expected: bool) -> None:
        out: Outbox = []
        with self._lock:
            if child is not self._child or expected:
                return
            self._child = None
            running, self._running = self._running, None
            self.model = None
            message = describe_exit(exitcode, self._doing(running))
            if running is not None and self._retry_in_safe_mode(running, exitcode, message, out):
                self._dispatch(out)
            else:
                self._fail_after_crash(running, exitcode, message, out)
                self._set_state(EngineState.CRASHED, out)
                if self._queue:  # a queued load starts a fresh child; anything else needs a model and fails
                    self._dispatch(out)
        _run(out)

    def _retry_in_safe_mode(self, running: PendingRequest, exitcode: int | None, crash: str, out: Outbox) -> bool:
        """Queue the crashed request again behind a load one safe-mode step further, if there is one."""
        base = running if isinstance(running.request, LoadRequest) else self._loaded
        if base is None or base.spec is None or not is_native_crash(exitcode) or base.spec.engine not in ENGINES:
            return False
        steps = safe_steps(base.spec.options)
        level = base.level + 1
        if level > len(steps):
            return False
        changes = steps[level - 1][1]
        reason = base.reason or crash
        if base is running:
            running.level, running.changes, running.reason, running.discovered = level, changes, reason, True
            self._queue.appendleft(running)
        else:
            reload = self._new(LoadRequest(next(self._ids), base.spec), spec=base.spec, level=level)
            reload.changes, reload.reason, reload.discovered, reload.retry_of = changes, reason, True, running
            self._queue.appendleft(running)
            self._queue.appendleft(reload)
        self._loaded = None
        logger.info("%s Retrying with: %s", crash, "; ".join(changes))
        shown = running.retry_of if running.retry_of is not None else running
        out.append(partial(self.events.emit, EngineRecovering(shown.id, crash, changes)))
        return True

    def _fail_after_crash(self, running: PendingRequest | None, exitcode: int | None, crash: str, out: Outbox) -> None:
        base = running if running is not None and isinstance(running.request, LoadRequest) else self._loaded
        if (
            running is not None
            and base is not None
            and base.spec is not None
            and is_native_crash(exitcode)
            and base.spec.engine in ENGINES
        ):
            reason = base.reason or crash
            out.append(partial(self._remember, base, runs=False, reason=reason))
            crash = (
                f"{crash} Safe mode did not help: {Path(base.spec.path).name} cannot run on this machine "
                "with this engine build."
            )
        self._loaded = None
        target = running.retry_of if running is not None and running.retry_of is not None else running
        if running is not None and target is not running:
            self._complete(running, EngineCrashed(running.id, exitcode, crash), out, announce=False)
            if target is not None and target in self._queue:
                self._queue.remove(target)
        crashed = EngineCrashed(target.id if target else None, exitcode, crash)
        if target is not None:
            self._complete(target, crashed, out)
        else:
            out.append(partial(self.events.emit, crashed))
        for queued in [r for r in self._queue if not isinstance(r.request, LoadRequest)]:
            self._drop_queued(queued, RequestFailed(queued.id, EngineCrashedError.code, crash), out)

    def _drop_queued(self, request: PendingRequest, event: EngineEvent, out: Outbox) -> None:
        if request in self._queue:
            self._queue.remove(request)
        if request.outcome is None:
            self._complete(request, event, out)

    def _doing(self, running: PendingRequest | None) -> str:
        if running is None:
            return ""
        if isinstance(running.request, LoadRequest) and running.spec is not None:
            return f"while loading {Path(running.spec.path).name}"
        if self._loaded is not None and self._loaded.spec is not None:
            return f"while generating with {Path(self._loaded.spec.path).name}"
        return ""

    # -- internals: safe mode -------------------------------------------------------------------------------------
    def _remember(self, request: PendingRequest, *, runs: bool, reason: str = "") -> None:
        if self.safe_modes is None or request.spec is None:
            return
        try:
            self.safe_modes.remember(
                request.spec.path,
                request.spec.engine,
                level=request.level,
                changes=request.changes,
                reason=reason or request.reason,
                runs=runs,
            )
        except Exception as exc:
            logger.warning("could not record safe mode for %s: %s", request.spec.path, exc)

    # -- internals: cancelling ------------------------------------------------------------------------------------
    def _force_cancel(self, request: PendingRequest) -> None:
        with self._lock:
            still_running = self._running is request
        if still_running:
            logger.warning("engine did not stop request %d in time; restarting it", request.id)
            self._restart_after(request, "Stopped (the engine had to be restarted).")

    def _restart_after(self, request: PendingRequest, message: str) -> None:
        with self._lock:
            if self._running is not request:
                return
            child, self._child = self._child, None  # its exit is expected now: nothing it says counts
        if child is not None:
            child.stop(timeout=0.0, grace=0.5)
        out: Outbox = []
        with self._lock:
            if self._running is request:
                self._running = None
            self.model, self._loaded = None, None
            if request.retry_of is not None:
                self._drop_queued(
                    request.retry_of, RequestFailed(request.retry_of.id, CancelledError.code, message), out
                )
            self._complete(request, RequestFailed(request.id, CancelledError.code, message), out)
            self._spawn(out)
            self._dispatch(out)
        _run(out)


def _run(out: Outbox) -> None:
    """Announce what happened, outside the host's lock (listeners may call the host)."""
    for action in out:
        action()
