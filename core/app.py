"""The services of one running Hangar, shared by the window and the command line: their one owner.

``main.py`` builds an ``AppContext`` (paths, settings, the engine entry point from ``backends``) and hands it to
the UI or to a CLI command. Every service (the database, jobs, the library, downloads, chat, fine-tuning) is a
cached property created on first use, so commands like ``--help`` stay instant, and closed by ``close()`` in the
reverse order. Cross-feature flows are wired here, once: a finished download enters the library, the
parallel-downloads setting reaches the job manager, and the models folder has one owner (``models_dir``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from core.engine.host import EngineHost
from core.engine.protocol import WorkerEntry
from core.hardware import EngineSupport, Hardware
from core.jobs import JobKind, JobManager
from core.paths import AppPaths
from core.settings import Settings, SettingsService
from core.store import Store

if TYPE_CHECKING:
    from core.chat.service import ChatService
    from core.docs.service import DocumentService
    from core.downloads.manager import DownloadManager
    from core.engine.safemode import SafeModeBook
    from core.finetune.service import FinetuneService
    from core.jobs import CancelToken
    from core.library.move import MoveReport
    from core.library.service import Library
    from core.remote.rpc import WorkerProcess, WorkerRequest
    from core.remote.service import RemoteService
    from core.secrets import SecretStore
    from core.serve.server import ServeService
    from core.workshop.service import WorkshopService

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
#: Held while a service is built (services are built rarely, and a build may build the services it needs).
_BUILDING = threading.RLock()


class service(cached_property[_T]):
    """A service of the app: built on first use, once, even when two threads ask at once (the window's pages
    start background work while they are built; Python 3.12 dropped ``cached_property``'s own lock)."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Self | _T:
        if instance is None:
            return self
        with _BUILDING:
            return super().__get__(instance, owner)


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
    #: Restart downloads interrupted by a previous run when the download manager starts (the window does; a
    #: one-shot command such as ``pull`` must not start other downloads).
    resume_downloads: bool = True
    #: ``backends.workshop_worker.run``, run in the workshop child process (None: the Workshop is unavailable).
    workshop_entry: Callable[[Any, Any, Any], None] | None = None
    #: ``backends.facts.fit_in_child``: llama.cpp's memory-fit pass for a file, run in a child process.
    fit_runner: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: ``backends.rpc_worker.serve``: llama.cpp's RPC server, run in a worker child process (``core.remote.rpc``).
    rpc_worker_entry: Callable[[Any, Any, Any], None] | None = None
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
        *,
        resume_downloads: bool = True,
        workshop_entry: Callable[[Any, Any, Any], None] | None = None,
        fit_runner: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        rpc_worker_entry: Callable[[Any, Any, Any], None] | None = None,
    ) -> AppContext:
        paths.ensure()
        return cls(
            paths=paths,
            settings=SettingsService.open(paths.settings_file),
            worker_entry=worker_entry,
            engine_availability=engine_availability,
            finetune_entry=finetune_entry,
            engine_probe=engine_probe,
            resume_downloads=resume_downloads,
            workshop_entry=workshop_entry,
            fit_runner=fit_runner,
            rpc_worker_entry=rpc_worker_entry,
        )

    # -- the models folder and what to tell the person ------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        """Where downloads and imported copies go, as Settings says now (the one owner of this value)."""
        return self.settings.models_dir(self.paths.models_dir)

    @property
    def notices(self) -> tuple[str, ...]:
        """Sentences to say once (a damaged settings file or database kept aside), from what has started."""
        found = list(self.settings.notices)
        if "store" in self.__dict__:
            found += self.store.notices
        return tuple(found)

    # -- services -------------------------------------------------------------------------------------------------

    @service
    def store(self) -> Store:
        store = Store(self.paths.database_file)
        self._closers.append(store.close)
        return store

    @service
    def jobs(self) -> JobManager:
        manager = JobManager(self.store, limits={JobKind.DOWNLOAD: self.settings.current.max_parallel_downloads})

        def follow(settings: Settings) -> None:
            manager.set_limit(JobKind.DOWNLOAD, settings.max_parallel_downloads)

        self._closers.insert(0, self.settings.changed.connect(follow))
        self._closers.insert(0, manager.shutdown)
        return manager

    @service
    def library(self) -> Library:
        from core.library.service import Library

        return Library(self.store, self.paths, self.settings)

    @service
    def secrets(self) -> SecretStore:
        """Secrets (the Hub token, API keys): the keyring, else a 0600 file in the data folder."""
        from core.secrets import SECRETS_FILE, SecretStore

        return SecretStore.shared(self.paths.data_dir / SECRETS_FILE)

    @service
    def downloads(self) -> DownloadManager:
        """The download manager; every download that finishes enters the library (``core.library.downloads``)."""
        from core.downloads.limits import from_settings
        from core.downloads.manager import DownloadManager
        from core.hub.client import HubClient
        from core.library.downloads import follow_downloads

        manager = DownloadManager(
            self.jobs,
            self.store,
            self.paths,
            HubClient(self.secrets.get_token),
            models_dir=lambda: self.models_dir,
            auto_resume=False,
            options=from_settings(lambda: self.settings.current),
        )
        self._closers.insert(0, follow_downloads(self.library, manager, index_finished=False))
        if self.resume_downloads:
            manager.resume_interrupted()
        return manager

    def index_finished_downloads(self) -> int:
        """Index finished downloads the library lacks (one that ended while no Hangar was following it);
        slow-ish (header reads), so the window runs it in the background. Returns the entries touched."""
        from core.library.downloads import index_all

        return index_all(self.library, self.downloads)

    @service
    def chat(self) -> ChatService:
        from core.chat.service import ChatService

        service = ChatService(self)
        self._closers.insert(0, service.close)
        return service

    @service
    def finetune(self) -> FinetuneService:
        from core.finetune.service import FinetuneService, library_registrar

        service = FinetuneService(
            self.store,
            self.jobs,
            self.paths.adapters_dir,
            self.finetune_entry,
            register_adapter=library_registrar(self.library),
            log_file=self.paths.log_file,
        )
        # First to close: its runs stop and write their last rows before the jobs' shutdown and the store's close.
        self._closers.insert(0, service.close)
        return service

    @service
    def serve(self) -> ServeService:
        """The local API server (stopped until started from the window or ``hangar serve``)."""
        from core.serve.server import ServeService

        server = ServeService(self)
        self._closers.insert(0, server.stop)
        return server

    def move_models(
        self,
        new_dir: Path,
        *,
        progress: Callable[[float, str], None] | None = None,
        token: CancelToken | None = None,
    ) -> MoveReport:
        """Move the models folder: files, library and settings; new downloads follow through ``models_dir``."""
        from core.library.move import move_models_folder, plan_move

        plan = plan_move(self.library, new_dir)
        return move_models_folder(self.library, plan, self.settings, progress=progress, token=token)

    @service
    def workshop(self) -> WorkshopService:
        from core.workshop.service import WorkshopService, library_registrar

        return WorkshopService(
            self.store,
            self.jobs,
            self.workshop_entry,
            hardware=lambda: self.hardware().as_dict(),
            register_model=library_registrar(self.library),
        )

    @service
    def remotes(self) -> RemoteService:
        """Saved remote servers (OpenAI-compatible) that chats can run on."""
        from core.remote.service import RemoteService, keyring_keys

        return RemoteService(self.store, keyring_keys())

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

                self._hardware = detect_hardware(self.engine_probe, cache_dir=self.paths.cache_dir)
            return self._hardware

    @service
    def safe_modes(self) -> SafeModeBook:
        """What safe mode learned about models that crash the engine here (``known_crash(path)`` for badges)."""
        from core.engine.safemode import SafeModeBook

        return SafeModeBook(self.store, machine_reason=self._extra_buffers_crash)

    def _extra_buffers_crash(self) -> str:
        facts = self.hardware().engines.facts
        if facts is None or not facts.extra_buffers_crash:
            return ""
        names = ", ".join(b.name for b in facts.extra_buffers) or "repacked weights"
        return f"llama.cpp's decode crashes on this CPU with its extra buffer types ({names}) on"

    def new_engine_host(self, name: str = "engine") -> EngineHost:
        host = EngineHost(self.worker_entry, name=name, safe_modes=self.safe_modes)
        self._closers.insert(0, host.shutdown)
        return host

    def new_rpc_worker(self, request: WorkerRequest) -> WorkerProcess:
        """An RPC worker process (``core.remote.rpc``) that is stopped when the app closes."""
        from core.errors import UsageError
        from core.remote.rpc import WorkerProcess

        if self.rpc_worker_entry is None:
            raise UsageError("This Hangar was built without llama.cpp, so it cannot run an RPC worker.")
        worker = WorkerProcess(self.rpc_worker_entry, request)
        self._closers.insert(0, worker.stop)
        return worker

    def close(self) -> None:
        """Close every service, newest first; one that fails is logged and the others still close."""
        while self._closers:
            closer = self._closers.pop(0)
            try:
                closer()
            except Exception:
                logger.exception("closing %r failed", closer)
