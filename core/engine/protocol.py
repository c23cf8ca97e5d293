"""What crosses the engine boundary: load options, messages, requests, events, values, and the ``Engine``
interface a backend implements inside the child process. Plain, picklable frozen dataclasses only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.engine.images import ChatImage
from core.engine.params import GenerationParams

__all__ = [
    "ChatImage",
    "ChatMessage",
    "CompletionRequest",
    "CountTokensRequest",
    "EmbedRequest",
    "EmbeddingsReady",
    "Engine",
    "EngineCrashed",
    "EngineEvent",
    "EngineRecovering",
    "EngineRequest",
    "EngineStarted",
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
    #: llama.cpp's extra CPU buffer types (weights repacked for AMX, CPU_REPACK, KleidiAI). Safe mode turns it off.
    use_extra_bufts: bool = True
    #: Map the model file instead of reading it into memory.
    use_mmap: bool = True
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
    #: A vision model's projector (``mmproj*.gguf``, llama.cpp): loaded next to the model so messages take images.
    projector: str | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str
    #: Images the message shows the model (``core.engine.images``), placed before its text.
    images: tuple[ChatImage, ...] = ()


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
    #: What safe mode changed for this load, in plain words (empty when the model runs as asked).
    safe_mode: tuple[str, ...] = ()
    #: Why safe mode is on: the crash that made it necessary (a sentence), empty when it is off.
    safe_mode_reason: str = ""
    #: A load over RPC workers: each worker device's (free, total) bytes when llama.cpp split the layers by them,
    #: named as its buffers are (``RPC0[host:port]``), so that the estimate of the same split can be made.
    rpc_memory: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: A projector is loaded: messages may carry images.
    vision: bool = False


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_ms: float
    tokens_per_second: float  # decode speed, first token excluded
    stop_reason: str  # "stop" | "length" | "cancelled"
    text: str = ""
    #: Of ``prompt_tokens``, the positions the images took.
    image_tokens: int = 0


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


@dataclass(frozen=True)
class CompletionRequest:
    """Continue a raw prompt (no chat template): ``/v1/completions``. Answers like ``GenerateRequest``."""

    request_id: int
    prompt: str
    params: GenerationParams


@dataclass(frozen=True)
class EmbedRequest:
    """One embedding vector per text (mean-pooled, L2-normalised). Answered by ``EmbeddingsReady``."""

    request_id: int
    texts: tuple[str, ...]


EngineRequest = (
    LoadRequest
    | GenerateRequest
    | CountTokensRequest
    | UnloadRequest
    | ShutdownRequest
    | CompletionRequest
    | EmbedRequest
)


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
class TokenLogprob:
    """The log-probability of one generated token and its most likely alternatives (``params.logprobs``)."""

    request_id: int
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class EmbeddingsReady:
    request_id: int
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


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


@dataclass(frozen=True)
class EngineRecovering:
    """The engine crashed on ``request_id``; the host restarts it with ``changes`` and runs the request again.
    Text streamed before the crash is void: the reply starts over."""

    request_id: int
    crash: str
    changes: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.crash} Trying again in safe mode: {'; '.join(self.changes)}."


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
    | EngineRecovering
    | TokenLogprob
    | EmbeddingsReady
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
