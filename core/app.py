"""The services of one running Hangar, shared by the window and the command line.

``main.py`` builds an ``AppContext`` (paths, settings, the engine entry point from ``backends``) and hands it to
the UI or to a CLI command. Heavier services (the database, jobs) are created on first use so that commands like
``--help`` stay instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.engine.host import EngineHost, WorkerEntry
from core.hardware import EngineSupport, Hardware
from core.jobs import JobManager
from core.paths import AppPaths
from core.settings import SettingsService
from core.store import Store

if TYPE_CHECKING:
    from core.docs.service import DocumentService
    from core.finetune.service import FinetuneService


@dataclass
class AppContext:
    paths: AppPaths
    settings: SettingsService
    #: ``backends.worker.serve``: run inside the engine child process.
    worker_entry: WorkerEntry
    #: Which engines are installed (``backends.available_engines``), without importing them.
    engine_availability: Callable[[], dict[str, bool]] = field(default=lambda: {})
    #: ``backends.finetune_worker.run``, run in the fine-tune child process (None: fine-tuning unavailable).
    finetune_entry: Callable[[Any, Any, Any], None] | None = None
    #: ``backends.probe.probe_engines``: what the engines can do on this machine (GPU offload, Metal budget).
    engine_probe: Callable[[], EngineSupport] | None = None
    _hardware: Hardware | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)
    #: Pages detect hardware in the background at the same time; two engine probes at once corrupt the heap.
    _hardware_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(
        cls,
        paths: AppPaths,
        worker_entry: WorkerEntry,
        engine_availability: Callable[[], dict[str, bool]] = lambda: {},
        finetune_entry: Callable[[Any, Any, Any], None] | None = None,
        engine_probe: Callable[[], EngineSupport] | None = None,
    ) -> AppContext:
        paths.ensure()
        return cls(
            paths=paths,
            settings=SettingsService.open(paths.settings_file),
            worker_entry=worker_entry,
            engine_availability=engine_availability,
            finetune_entry=finetune_entry,
            engine_probe=engine_probe,
        )

    @cached_property
    def store(self) -> Store:
        store = Store(self.paths.database_file)
        self._closers.append(store.close)
        return store

    @cached_property
    def jobs(self) -> JobManager:
        manager = JobManager(self.store, limits={"download": self.settings.current.max_parallel_downloads})
        self._closers.insert(0, manager.shutdown)
        return manager

    @cached_property
    def finetune(self) -> FinetuneService:
        from core.finetune.service import FinetuneService, library_registrar
        from core.library.service import Library

        return FinetuneService(
            self.store,
            self.jobs,
            self.paths.adapters_dir,
            self.finetune_entry,
            register_adapter=library_registrar(Library.for_app(self)),
        )

    @cached_property
    def docs(self) -> DocumentService:
        """Document collections for chat (indexed as jobs; embeddings in an engine child process)."""
        from core.docs.service import DocumentService

        service = DocumentService(self.store, self.jobs, self.new_engine_host)
        self._closers.insert(0, service.close)
        return service

    def hardware(self, *, refresh: bool = False) -> Hardware:
        """This machine's devices and memory (``core.hardware``), detected once; ``refresh`` re-reads free memory."""
        with self._hardware_lock:
            if self._hardware is None or refresh:
                from core.hardware import detect_hardware

                self._hardware = detect_hardware(self.engine_probe)
            return self._hardware

    def new_engine_host(self, name: str = "engine") -> EngineHost:
        host = EngineHost(self.worker_entry, name=name)
        self._closers.insert(0, host.shutdown)
        return host

    def close(self) -> None:
        while self._closers:
            self._closers.pop(0)()
