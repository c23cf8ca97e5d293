"""The chat feature's service for the window: one engine process for chat, the model loaded in it, and a
session per open conversation. Several conversations share the loaded model (one reply at a time).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.chat.models import (
    ResolvedModel,
    engine_for,
    estimate_load,
    estimate_mlx_load,
    load_options,
    resolve_model,
    spec_for,
)
from core.chat.session import ChatSession
from core.chat.store import ChatStore
from core.chat.tools import MCP_FILE, ChatTools, ChatToolStore
from core.engine.host import EngineHost
from core.engine.protocol import LoadOptions, ModelInfo
from core.remote.split import estimate_for_load

if TYPE_CHECKING:
    from core.app import AppContext
    from core.estimate.llama import Estimate
    from core.estimate.mlx import MlxEstimate
    from core.hardware import Hardware
    from core.library.service import Library

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """A model the picker offers, with the estimator's fit badge for GGUF files."""

    path: Path
    engine: str
    name: str
    badge: str = ""  # "Runs on the CPU", "Fits entirely on the GPU", "Does not fit in memory", ...
    fits: bool = True


@dataclass(frozen=True)
class LoadedModel:
    model: ResolvedModel
    options: LoadOptions
    info: ModelInfo
    estimate: Estimate | MlxEstimate | None


#: The most models offered per remote server (a server with hundreds lists them in `hangar remote ls`).
MAX_REMOTE_MODELS = 30


class ChatService:
    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.chats = ChatStore(app.store)
        #: The app's MCP servers (``mcp.json`` in the data folder) and the conversations' tool calls and options.
        self.tool_store = ChatToolStore(app.store)
        self.tool_store.interrupt_pending()
        self.tools = ChatTools(app.paths.data_dir / MCP_FILE)
        self.host: EngineHost = app.new_engine_host("chat")
        self.loaded: LoadedModel | None = None
        self._pending: tuple[int, ResolvedModel, LoadOptions] | None = None
        #: The model and options of the last load request (for the estimator's advice when it fails).
        self.last_request: tuple[ResolvedModel, LoadOptions] | None = None
        self._sessions: dict[int, ChatSession] = {}
        self._lock = threading.Lock()
        #: The RPC workers registered in the current engine child (``LoadOptions.rpc_servers``).
        self._rpc_in_child: tuple[str, ...] = ()

    # -- models ---------------------------------------------------------------------------------------------------
    def choices(self, extra: list[str] | None = None) -> list[ModelChoice]:
        """Models to offer: those used by earlier chats, files in the models folder, and ``extra`` paths."""
        seen: dict[Path, ModelChoice] = {}
        entries = self.library().list()
        # an embedding model makes vectors for documents (Documents → New collection…); it does not chat
        documents_only = {e.load_path for e in entries if e.is_embedding}
        candidates = [str(e.load_path) for e in entries if e.engine and e.available and not e.is_embedding]
        candidates += [c.model for c in self.chats.conversations() if c.model] + list(extra or [])
        models_dir = self.app.models_dir
        if models_dir.is_dir():
            candidates += [str(p) for p in sorted(models_dir.rglob("*.gguf"))]
            candidates += [str(p.parent) for p in sorted(models_dir.rglob("config.json"))]
        for candidate in candidates:
            path = Path(candidate)
            if path in seen or path in documents_only or not path.exists():
                continue
            try:
                engine = engine_for(path)
            except Exception:
                continue
            seen[path] = self._choice(path, engine)
        return list(seen.values()) + self.remote_choices()

    def remote_choices(self, timeout: float = 3.0) -> list[ModelChoice]:
        """The models of every saved remote server that answers now (``core.remote``), as ``SERVER:MODEL``."""
        choices = []
        try:
            statuses = self.app.remotes.statuses(timeout=timeout)
        except Exception as exc:  # remote servers never keep local models from being offered
            logger.info("remote servers not listed: %s", exc)
            return []
        for status in statuses:
            probe, name = status.probe, status.server.name
            if not probe.answered:
                continue
            for model in (probe.models or (probe.default_model,))[:MAX_REMOTE_MODELS]:
                if model:
                    label = model.rsplit("/", 1)[-1]
                    choices.append(
                        ModelChoice(Path(f"{name}:{model}"), "remote", f"{label} · {name}", f"remote, {probe.kind}")
                    )
        return choices

    def _choice(self, path: Path, engine: str) -> ModelChoice:
        name = path.stem if path.is_file() else path.name
        crashed = self.app.safe_modes.known_crash(path, engine) if engine == "llama" else None
        if crashed is not None:  # what safe mode learned outranks the estimate
            return ModelChoice(path, engine, name, crashed.describe(), crashed.runs)
        if engine != "llama":
            return ModelChoice(path, engine, name, "MLX")
        estimate = estimate_load(path, self.default_options(), self.hardware(), gpu_layers=None)
        if estimate is None:
            return ModelChoice(path, engine, name, "")
        return ModelChoice(path, engine, name, estimate.verdict_text, estimate.verdict.value != "does_not_fit")

    def hardware(self) -> Hardware | None:
        try:
            return self.app.hardware()
        except Exception as exc:  # detection never blocks chatting
            logger.info("no hardware information: %s", exc)
            return None

    def library(self) -> Library:
        return self.app.library

    def default_options(self, **overrides: object) -> LoadOptions:
        return load_options(self.app.settings.current, **overrides)  # type: ignore[arg-type]

    def load(self, name_or_path: str, options: LoadOptions | None = None) -> int:
        """Start loading; the result arrives as ``ModelLoaded`` / ``RequestFailed`` on ``host.events``."""
        model = resolve_model(name_or_path, self.library(), self.app.remotes)
        options = options or self.default_options(model=model)
        if self._rpc_in_child and options.rpc_servers != self._rpc_in_child:
            # RPC workers are registered in the engine child for its lifetime: other workers need a new child
            self.host.shutdown()
        self._rpc_in_child = options.rpc_servers
        request_id = self.host.load(spec_for(model, options))
        with self._lock:
            self._pending = (request_id, model, options)
            self.last_request = (model, options)
            self.loaded = None
        return request_id

    def finish_load(self, info: ModelInfo) -> LoadedModel | None:
        """Record a finished load (call with the ``ModelLoaded`` event's info)."""
        with self._lock:
            pending = self._pending
            self._pending = None
        if pending is None or pending[1].path != Path(info.path):
            return None
        _, model, options = pending
        estimate: Estimate | MlxEstimate | None = None
        if model.engine == "mlx":
            estimate = estimate_mlx_load(model.path, options, self.hardware())
        elif model.engine == "llama":
            estimate = estimate_for_load(model.path, options, self.hardware(), info)  # per device over RPC workers
            self._record_load(estimate, info)
        self.loaded = LoadedModel(model, options, info, estimate)
        return self.loaded

    def _record_load(self, estimate: Estimate | MlxEstimate | None, info: ModelInfo) -> None:
        """Every llama.cpp load is recorded next to its estimate (``core.estimate.records``): later estimates on
        this machine are corrected by the records, and the Hardware page shows how accurate they were."""
        from core.estimate.llama import Estimate as LlamaEstimate
        from core.estimate.records import record_load

        if not isinstance(estimate, LlamaEstimate) or not info.allocated:
            return
        try:
            record_load(self.app.store, estimate, info.allocated)
        except Exception as exc:  # a record is a nicety: it never fails a load
            logger.info("load not recorded: %s", exc)

    def cancel_load(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        self.host.cancel(pending[0] if pending else None)

    def unload(self) -> None:
        self.loaded = None
        self.host.unload()

    def model_name(self) -> str | None:
        """The loaded model's display name (each reply is labelled with it)."""
        loaded = self.loaded
        if loaded is not None:
            return loaded.model.name
        model = self.host.model
        return Path(model.path).name if model is not None else None

    # -- sessions -------------------------------------------------------------------------------------------------
    def session(self, conversation_id: int) -> ChatSession:
        with self._lock:
            session = self._sessions.get(conversation_id)
            if session is None:
                session = ChatSession(
                    self.chats,
                    self.host,
                    conversation_id,
                    model_name=self.model_name,
                    tools=self.tools,
                    tool_store=self.tool_store,
                    docs=lambda: self.app.docs,
                )
                self._sessions[conversation_id] = session
            return session

    def forget(self, conversation_id: int) -> None:
        with self._lock:
            session = self._sessions.pop(conversation_id, None)
        if session is not None:
            session.stop()
            session.close()

    def busy_session(self) -> ChatSession | None:
        with self._lock:
            return next((s for s in self._sessions.values() if s.busy), None)

    def close(self) -> None:
        for conversation_id in list(self._sessions):
            self.forget(conversation_id)
        self.tools.close()
        self.host.shutdown()
