"""The models the server has loaded: one engine child process per model, loaded just in time, the least recently
used one evicted when the estimator says memory would not hold both, and idle ones unloaded after a while.

The pool lives on the server's event loop. Engine events arrive on the host's reader thread and are routed to
the asyncio queue of the request that asked for them. Requests for one model take turns (an ``asyncio.Lock`` is
fair: first come, first served); the lock is released by the request's final event, so a client that went away
still leaves the engine free for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.chat.models import ResolvedModel, estimate_load, estimate_mlx_load, load_options, spec_for
from core.engine.host import (
    EmbeddingsReady,
    EngineCrashed,
    EngineEvent,
    EngineHost,
    GenerationFinished,
    LoadOptions,
    ModelInfo,
    RequestFailed,
    TokensCounted,
)
from core.errors import EngineError, InsufficientMemoryError, NotFoundError, UnsupportedModelError
from core.events import EventHook
from core.serve.defaults import ModelDefaults, ModelDefaultsStore

if TYPE_CHECKING:
    from core.app import AppContext
    from core.library.service import Library

logger = logging.getLogger(__name__)

FINAL_EVENTS = (GenerationFinished, TokensCounted, EmbeddingsReady, RequestFailed, EngineCrashed)


@dataclass(frozen=True)
class LoadedSummary:
    """What the Server page shows of a loaded model."""

    name: str
    engine: str
    context_length: int
    memory_bytes: int  # what the engine reports it allocated (the estimate where it reports nothing)
    idle_seconds: float
    busy: bool
    pid: int | None = None
    #: Generations stopped because their client went away.
    cancelled: int = 0


@dataclass
class PooledModel:
    model: ResolvedModel
    model_id: str
    options: LoadOptions
    defaults: ModelDefaults
    host: EngineHost
    info: ModelInfo
    estimate_bytes: int
    last_used: float = field(default_factory=time.monotonic)
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    active: int = 0
    cancelled: int = 0
    _routes: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue[EngineEvent]]] = field(default_factory=dict)
    _routes_lock: threading.Lock = field(default_factory=threading.Lock)
    _disconnect: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def alive(self) -> bool:
        return self.host.model is not None

    @property
    def memory_bytes(self) -> int:
        return sum(self.info.allocated.values()) or self.estimate_bytes

    def attach(self) -> None:
        self._disconnect = self.host.events.connect(self._route)

    def detach(self) -> None:
        if self._disconnect is not None:
            self._disconnect()
            self._disconnect = None

    def _route(self, event: EngineEvent) -> None:
        """On the host's reader thread: hand the event to the request that owns it."""
        with self._routes_lock:
            if isinstance(event, EngineCrashed):
                targets = list(self._routes.items())
                self._routes.clear()
            else:
                request_id = getattr(event, "request_id", None)
                target = self._routes.get(request_id) if isinstance(request_id, int) else None
                if target is None or not isinstance(request_id, int):
                    return
                targets = [(request_id, target)]
                if isinstance(event, FINAL_EVENTS):
                    self._routes.pop(request_id, None)
        for _, (loop, queue) in targets:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the loop is closed: the server stopped
                pass

    async def run(self, start: Callable[[EngineHost], int]) -> AsyncIterator[EngineEvent]:
        """Wait for this model's turn, send one request, yield its events until the final one. If the caller stops
        listening early (a client disconnected), the generation is cancelled and the turn passes on when the
        engine confirms."""
        await self.turn.acquire()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[EngineEvent] = asyncio.Queue()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.last_used = time.monotonic()
                self.active -= 1
                self.turn.release()

        self.active += 1
        try:
            with self._routes_lock:
                request_id = start(self.host)
                self._routes[request_id] = (loop, queue)
        except BaseException:
            release()
            raise
        finished = False
        try:
            while True:
                event = await queue.get()
                if isinstance(event, FINAL_EVENTS):
                    finished = True
                    release()
                    yield event
                    return
                yield event
        finally:
            if not finished:
                self._abandon(request_id, loop, release)

    def _abandon(self, request_id: int, loop: asyncio.AbstractEventLoop, release: Callable[[], None]) -> None:
        """The listener went away mid-request: cancel it, and free the turn when its final event arrives."""
        waiter: asyncio.Queue[EngineEvent] = asyncio.Queue()
        with self._routes_lock:
            still_running = request_id in self._routes
            if still_running:
                self._routes[request_id] = (loop, waiter)
        if not still_running:
            release()
            return
        self.host.cancel(request_id)

        async def wait_then_release() -> None:
            try:
                while not isinstance(event := await waiter.get(), FINAL_EVENTS):
                    pass
                if isinstance(event, GenerationFinished) and event.stats.stop_reason == "cancelled":
                    self.cancelled += 1
                logger.info("request %d of %s ended after its client left: %s", request_id, self.name, event)
            finally:
                release()

        loop.create_task(wait_then_release())


class ModelPool:
    def __init__(
        self,
        app: AppContext,
        *,
        memory_budget_bytes: int | None = None,
        idle_unload_seconds: float = 3600.0,
    ) -> None:
        self._app = app
        self._budget = memory_budget_bytes
        self.idle_unload_seconds = idle_unload_seconds
        self._models: dict[str, PooledModel] = {}  # by library id (or path for linked files)
        self._loading = asyncio.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: list[LoadedSummary] = []
        self.defaults = ModelDefaultsStore(app.store)
        #: Announced (on the server's thread) whenever a model is loaded or unloaded.
        self.changed: EventHook[[]] = EventHook()

    # -- names ----------------------------------------------------------------------------------------------------
    def library(self) -> Library:
        return self._app.library

    def available(self) -> list[tuple[str, str, float]]:
        """(name, engine, added_at) of every model the API can serve."""
        return [(e.name, e.engine or "", e.added_at) for e in self.library().list() if e.engine and e.available]

    def resolve(self, name: str) -> tuple[str, ResolvedModel]:
        """A library name or id → its id and file. Paths are not accepted: the API serves the library only."""
        library = self.library()
        try:
            entry = library.get(name)
        except NotFoundError:
            names = [n for n, _, _ in self.available()]
            listed = ", ".join(names[:20]) or "none (add one with `hangar import` or `hangar pull`)"
            raise NotFoundError(f"There is no model “{name}”. Models: {listed}.") from None
        if entry.engine is None:
            raise UnsupportedModelError(f"{entry.name} is a LoRA adapter, not a model to run.")
        if not entry.available:
            raise NotFoundError(f"The files of {entry.name} are missing from {entry.root}.")
        projector = entry.projector.resolve() if entry.projector else None  # a vision model's mmproj goes along
        return entry.id, ResolvedModel(entry.engine, entry.load_path.resolve(), entry.name, projector=projector)

    # -- loading --------------------------------------------------------------------------------------------------
    async def get(self, name: str) -> PooledModel:
        """The loaded model for ``name``, loading it (and evicting others) first if needed."""
        model_id, model = self.resolve(name)
        pooled = self._models.get(model_id)
        if pooled is not None and pooled.alive:
            pooled.last_used = time.monotonic()
            return pooled
        async with self._loading:
            pooled = self._models.get(model_id)
            if pooled is not None and pooled.alive:
                return pooled
            if pooled is not None:  # its engine crashed or was restarted: load it again
                await self._drop(model_id)
            return await self._load(model_id, model)

    async def run(self, name: str, start: Callable[[EngineHost], int]) -> AsyncIterator[EngineEvent]:
        """``PooledModel.run`` on the model called ``name``, loading it first if needed. A model unloaded while
        this request waited for its turn is loaded again rather than failing the request."""
        for attempt in range(2):
            pooled = await self.get(name)
            try:
                async for event in pooled.run(start):
                    yield event
                return
            except EngineError:
                if pooled.alive or attempt == 1:
                    raise

    async def _load(self, model_id: str, model: ResolvedModel) -> PooledModel:
        defaults = self.defaults.get(model_id)
        options = load_options(
            self._app.settings.current, context_length=defaults.context_length, gpu_layers=defaults.gpu_layers
        )
        # off the event loop: hardware detection and reading a GGUF header can take a while
        need = await asyncio.to_thread(self._estimate_bytes, model, options)
        budget = await asyncio.to_thread(self.memory_budget)
        while self._models and self._used_bytes() + need > budget:
            victim = min(self._models.values(), key=lambda m: m.last_used)
            logger.info("unloading %s to make room for %s", victim.name, model.name)
            await self._drop(victim.model_id)
        if need > budget:
            raise InsufficientMemoryError(
                f"{model.name} needs about {need / 2**30:.1f} GiB; the server may use {budget / 2**30:.1f} GiB.",
                hint="Choose a smaller quant or a shorter context for this model, or raise the memory budget.",
            )
        host = self._app.new_engine_host(f"serve-{len(self._models)}")
        logger.info("loading %s for the server", model.name)
        try:
            info = await asyncio.to_thread(host.load_blocking, spec_for(model, options))
        except BaseException:
            await asyncio.to_thread(host.shutdown)
            raise
        pooled = PooledModel(model, model_id, options, defaults, host, info, need)
        pooled.attach()
        self._models[model_id] = pooled
        self._publish()
        return pooled

    async def _drop(self, model_id: str) -> None:
        pooled = self._models.pop(model_id, None)
        if pooled is None:
            return
        async with pooled.turn:  # let the current request finish first
            pooled.detach()
            await asyncio.to_thread(pooled.host.shutdown)
        self._publish()

    async def unload(self, name: str) -> bool:
        for model_id, pooled in list(self._models.items()):
            if pooled.name == name or model_id == name:
                await self._drop(model_id)
                return True
        return False

    async def unload_idle(self) -> list[str]:
        """Unload models nobody has used for ``idle_unload_seconds``; returns their names."""
        if self.idle_unload_seconds <= 0:
            return []
        now = time.monotonic()
        idle = [
            (model_id, p.name)
            for model_id, p in self._models.items()
            if p.active == 0 and now - p.last_used >= self.idle_unload_seconds
        ]
        for model_id, name in idle:
            logger.info("unloading %s after %.0f s idle", name, self.idle_unload_seconds)
            await self._drop(model_id)
        return [name for _, name in idle]

    async def close(self) -> None:
        for model_id in list(self._models):
            await self._drop(model_id)

    # -- memory ---------------------------------------------------------------------------------------------------
    def memory_budget(self) -> int:
        if self._budget is not None:
            return self._budget
        hardware = self._app.hardware()
        gpu = sum(g.budget_bytes for g in hardware.gpus) if hardware.engines.llama_gpu_offload else 0
        return int(hardware.ram_total_bytes * 0.8) + gpu

    def _used_bytes(self) -> int:
        return sum(m.estimate_bytes for m in self._models.values())

    def _estimate_bytes(self, model: ResolvedModel, options: LoadOptions) -> int:
        hardware = self._app.hardware()
        if model.engine == "llama":
            layers = options.gpu_layers if options.gpu_layers >= -1 else None
            estimate = estimate_load(model.path, options, hardware, gpu_layers=layers)
            if estimate is not None:
                return estimate.total_bytes
        else:
            mlx = estimate_mlx_load(model.path, options, hardware)
            if mlx is not None:
                return mlx.total_bytes
        return _size_on_disk(model.path)

    # -- for the window -------------------------------------------------------------------------------------------
    def loaded(self) -> list[LoadedSummary]:
        """Thread-safe snapshot of the loaded models."""
        with self._snapshot_lock:
            snapshot = list(self._snapshot)
        return snapshot

    def refresh_snapshot(self) -> None:
        now = time.monotonic()
        summaries = [
            LoadedSummary(
                p.name,
                p.model.engine,
                p.info.context_length,
                p.memory_bytes,
                now - p.last_used,
                p.active > 0,
                p.host.pid,
                p.cancelled,
            )
            for p in list(self._models.values())  # a copy: the window reads while the server thread loads
        ]
        with self._snapshot_lock:
            self._snapshot = summaries

    def _publish(self) -> None:
        self.refresh_snapshot()
        self.changed.emit()


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
