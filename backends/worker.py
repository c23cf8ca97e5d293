"""The engine child process: one loop, one model, requests in order (llama.cpp and MLX are not thread-safe).

``serve`` is the process target handed to ``core.engine.host.EngineHost``. Every outcome becomes an event; nothing
raised here reaches the app except as a ``RequestFailed`` or, if the process dies, the host's ``EngineCrashed``.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from core.engine.images import refuse_images
from core.engine.protocol import (
    CompletionRequest,
    CountTokensRequest,
    EmbeddingsReady,
    EmbedRequest,
    Engine,
    EngineStarted,
    GenerateRequest,
    GenerationFinished,
    LoadOptions,
    LoadProgress,
    LoadRequest,
    ModelLoaded,
    ModelUnloaded,
    RequestFailed,
    ShutdownRequest,
    TokenChunk,
    TokenLogprob,
    TokensCounted,
    UnloadRequest,
)
from core.errors import CancelledError, EngineError, HangarError, UnsupportedModelError

logger = logging.getLogger(__name__)


def _put_progress(events: Any, request_id: int, fraction: float | None) -> None:
    events.put(LoadProgress(request_id, fraction))


def _put_chunk(events: Any, request_id: int, text: str) -> None:
    events.put(TokenChunk(request_id, text))


def _put_logprob(events: Any, request_id: int, token: str, logprob: float, top: tuple[tuple[str, float], ...]) -> None:
    events.put(TokenLogprob(request_id, token, logprob, top))


def _capability(engine: Engine | None, name: str, what: str) -> Any:
    """An optional engine method (raw completion, embeddings), or a clear refusal for engines without it."""
    if engine is None:
        raise EngineError("No model is loaded.")
    method = getattr(engine, name, None)
    if method is None:
        raise UnsupportedModelError(f"This engine cannot do {what}.", hint="Use a GGUF model (llama.cpp) for it.")
    return method


def _logprob_sink(engine: Any, method: str, events: Any, request_id: int, wanted: bool) -> dict[str, Any]:
    """``on_logprob`` for engines whose method takes it; a clear refusal for those that cannot report them."""
    if not wanted:
        return {}
    if "on_logprob" not in inspect.signature(getattr(engine, method)).parameters:
        raise UnsupportedModelError("This engine cannot report log-probabilities.", hint="Ask without logprobs.")
    return {"on_logprob": partial(_put_logprob, events, request_id)}


def serve(requests: Any, events: Any, cancel: Any) -> None:
    # The host stops us with SIGINT first; inside a native call Python sees it only on return, which is what we
    # want: the current token finishes, then KeyboardInterrupt ends the process.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=os.environ.get("HANGAR_ENGINE_LOG", "WARNING"))
    engine: Engine | None = None
    engine_name: str | None = None
    loaded: LoadOptions | None = None
    fault = _TestFault.from_environment()
    events.put(EngineStarted(os.getpid()))
    while True:
        request = requests.get()
        if isinstance(request, ShutdownRequest):
            if engine is not None:
                engine.unload()
            return
        request_id = request.request_id
        try:
            if isinstance(request, LoadRequest):
                if engine is not None:
                    engine.unload()
                if engine is None or engine_name != request.spec.engine:
                    from backends import create_engine

                    engine = create_engine(request.spec.engine)
                    engine_name = request.spec.engine
                events.put(LoadProgress(request_id, None))
                loaded = None
                fault.maybe_crash("load", request.spec.options)
                info = engine.load(request.spec, partial(_put_progress, events, request_id))
                loaded = request.spec.options
                events.put(ModelLoaded(request_id, info))
            elif isinstance(request, GenerateRequest):
                if engine is None:
                    raise EngineError("No model is loaded.")
                emit: Callable[[str], None] = partial(_put_chunk, events, request_id)
                if fault.applies("generate", loaded):
                    emit = fault.crash_after_first(emit, events)
                refuse_images(request.messages, bool(getattr(engine, "accepts_images", False)))
                extra = _logprob_sink(engine, "generate", events, request_id, request.params.logprobs)
                stats = engine.generate(request.messages, request.params, emit, cancel.is_set, **extra)
                events.put(GenerationFinished(request_id, stats))
            elif isinstance(request, CompletionRequest):
                complete = _capability(engine, "complete", "raw-prompt completion")
                extra = _logprob_sink(engine, "complete", events, request_id, request.params.logprobs)
                stats = complete(
                    request.prompt, request.params, partial(_put_chunk, events, request_id), cancel.is_set, **extra
                )
                events.put(GenerationFinished(request_id, stats))
            elif isinstance(request, EmbedRequest):
                vectors, tokens = _capability(engine, "embed", "embeddings")(request.texts)
                events.put(EmbeddingsReady(request_id, vectors, tokens))
            elif isinstance(request, CountTokensRequest):
                if engine is None:
                    raise EngineError("No model is loaded.")
                refuse_images(request.messages, bool(getattr(engine, "accepts_images", False)))
                events.put(TokensCounted(request_id, engine.count_tokens(request.messages)))
            elif isinstance(request, UnloadRequest):
                if engine is not None:
                    engine.unload()
                loaded = None
                events.put(ModelUnloaded(request_id))
        except CancelledError as exc:
            events.put(RequestFailed(request_id, exc.code, str(exc)))
        except HangarError as exc:
            events.put(RequestFailed(request_id, exc.code, str(exc)))
        except MemoryError:
            events.put(
                RequestFailed(
                    request_id,
                    "insufficient_memory",
                    "Not enough memory. Try fewer GPU layers, a shorter context or a smaller quant.",
                )
            )
        except Exception as exc:
            logger.error("engine request %d failed:\n%s", request_id, traceback.format_exc())
            events.put(RequestFailed(request_id, EngineError.code, f"The engine failed: {exc}"))


class _TestFault:
    """A test-only fault switch: ``HANGAR_TEST_ENGINE_CRASH=WHERE[:FEATURE]`` makes this process abort at WHERE
    (``load``, or ``generate`` after the first streamed piece) while FEATURE is still on, as a native crash would:
    ``extra_bufts`` (the default), ``flash_attention``, ``mmap``, or ``always`` (a model that cannot run here).
    ``once`` aborts only the first time for the marker file named by ``HANGAR_TEST_ENGINE_CRASH_MARKER``.
    Unset (always, outside tests), it does nothing."""

    def __init__(self, where: str, feature: str) -> None:
        self.where, self.feature = where, feature

    @classmethod
    def from_environment(cls) -> _TestFault:
        where, _, feature = os.environ.get("HANGAR_TEST_ENGINE_CRASH", "").partition(":")
        return cls(where.strip(), feature.strip() or "extra_bufts")

    def applies(self, where: str, options: LoadOptions | None) -> bool:
        if where != self.where or options is None:
            return False
        if self.feature == "once":
            marker = os.environ.get("HANGAR_TEST_ENGINE_CRASH_MARKER", "")
            if not marker or os.path.exists(marker):
                return False
            with open(marker, "w") as handle:
                handle.write("crashed once\n")
            return True
        switches = {
            "extra_bufts": options.use_extra_bufts,
            "flash_attention": options.flash_attention,
            "mmap": options.use_mmap,
            "always": True,
        }
        return switches.get(self.feature, False)

    def maybe_crash(self, where: str, options: LoadOptions) -> None:
        if self.applies(where, options):
            self.crash()

    def crash_after_first(self, emit: Callable[[str], None], events: Any) -> Callable[[str], None]:
        def emit_then_crash(text: str) -> None:
            emit(text)
            events.close()
            events.join_thread()  # the piece reaches the host before the abort, as a real stream's would
            self.crash()

        return emit_then_crash

    @staticmethod
    def crash() -> None:
        logger.error("test fault switch: aborting the engine process")
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a test's crash leaves no core file behind
        except (ImportError, ValueError, OSError):
            pass
        os.abort()
