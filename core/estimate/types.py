"""The estimate's values: the engine settings it assumes, what each device needs, the verdict, and who answered
(``core.estimate.llama`` computes them; ``exact`` and ``calibrate`` refine them)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import UsageError
from core.estimate.speed import SpeedPrediction

if TYPE_CHECKING:
    from core.estimate.vision import ProjectorUsage

MIB = 1024 * 1024
GIB = 1024 * MIB
KV_TYPES = ("f16", "bf16", "f32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")
#: CUDA/ROCm context, cuBLAS workspace and pool (llama.cpp PR #15860 measured 451-456 MiB; Ollama uses 457).
#: rpc: a worker's CPU backend needs no driver context (its process is the worker machine's business).
GPU_OVERHEAD = {"cuda": 450 * MIB, "rocm": 450 * MIB, "metal": 0, "vulkan": 300 * MIB, "sycl": 400 * MIB, "rpc": 0}
#: What the process itself needs besides llama.cpp's buffers (interpreter, libraries, tokenizer tables).
HOST_BASELINE = 150 * MIB
#: Only when llama.cpp could not be asked (no engine installed, the probe failed): the types the CPU backend's
#: generic repack takes on x86 and ARM (ggml-cpu ``repack.cpp``). The estimate then says it assumed them.
ASSUMED_REPACK = {
    "x86_avx2": frozenset({"Q4_0", "Q4_K", "IQ4_NL", "Q2_K"}),
    "arm": frozenset({"Q4_0", "Q4_K", "IQ4_NL", "Q8_0"}),
    "none": frozenset(),
}
SOURCE_FIT = "llama.cpp fit"
SOURCE_ANALYTIC = "analytic"
SOURCE_SIZE = "size-based"


class Verdict(enum.StrEnum):
    FULL_GPU = "full_gpu"
    PARTIAL = "partial"
    CPU_ONLY = "cpu_only"
    TOO_LARGE = "does_not_fit"

    @property
    def words(self) -> str:
        return {
            "full_gpu": "Fits entirely on the GPU",
            "partial": "Fits with some layers on the GPU",
            "cpu_only": "Runs on the CPU",
            "does_not_fit": "Does not fit in memory",
        }[self.value]


@dataclass(frozen=True)
class EngineSettings:
    """The load options Hangar passes to llama.cpp (mirrors ``core.engine.host.LoadOptions``)."""

    context_length: int = 4096  # 0 = the model's trained context
    gpu_layers: int | None = None  # None = choose automatically, -1 = all, N = the last N layers
    kv_cache_type: str = "f16"
    flash_attention: bool = False
    n_batch: int = 512
    n_ubatch: int = 512
    n_seq: int = 1
    swa_full: bool = True  # llama-cpp-python keeps a full-size sliding-window cache
    #: llama.cpp's extra CPU buffer types (repacked weights: AMX, CPU_REPACK, KleidiAI); off in safe mode and on
    #: machines where the engine probe saw them crash (``EngineFacts.extra_buffers_crash``).
    extra_buffers: bool = True
    #: Keep this much free on every GPU and in RAM (driver spikes, the desktop, other programs).
    gpu_margin: int = 512 * MIB
    host_margin: int = 1 * GIB

    def __post_init__(self) -> None:
        if self.kv_cache_type not in KV_TYPES:
            raise UsageError(f"Unknown KV cache type {self.kv_cache_type!r}; use one of {', '.join(KV_TYPES)}.")
        if self.context_length < 0 or self.context_length > 16 * 1024 * 1024:
            raise UsageError(f"Context length {self.context_length} is out of range.")
        if self.kv_cache_type not in ("f16", "bf16", "f32") and not self.flash_attention:
            raise UsageError(
                "A quantized V cache needs flash attention in llama.cpp.",
                hint="Turn flash attention on, or use an f16 KV cache.",
            )


@dataclass(frozen=True)
class DeviceUsage:
    """Bytes one device (a GPU, or the host) needs. ``budget`` is what it can give, None when unknown."""

    device: str  # "CPU" (the host), "CUDA0", "MTL0", ...
    weights: int = 0
    repack: int = 0  # CPU-only: re-laid-out copies of quantized matrices
    kv: int = 0
    compute: int = 0
    output: int = 0
    overhead: int = 0
    budget: int | None = None
    #: Part of ``weights`` that is file-backed and read only once: the mapped pages of tensors the CPU backend
    #: repacked into ``repack``. llama.cpp reports them in its mapped buffer, but the OS can drop them.
    reclaimable: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.repack + self.kv + self.compute + self.output + self.overhead

    @property
    def resident(self) -> int:
        """What must stay in memory: ``total`` less the reclaimable mapped pages."""
        return self.total - self.reclaimable

    @property
    def fits(self) -> bool:
        return self.budget is None or self.resident <= self.budget

    @property
    def is_host(self) -> bool:
        return self.device == "CPU"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "resident": self.resident, "fits": self.fits}


@dataclass(frozen=True)
class Estimate:
    model: str
    settings: EngineSettings
    n_ctx: int  # the context llama.cpp will really allocate (padded to 256)
    gpu_layers: int  # resolved: how many of the n_layer + 1 layers go to GPUs
    n_layer: int
    devices: tuple[DeviceUsage, ...]  # the host first, then GPUs
    verdict: Verdict
    max_context: int  # largest context that fits with this layer setting (0 if none does)
    tokens_per_second: float | None
    bytes_per_token: int
    notes: tuple[str, ...] = field(default=())
    #: Who answered: "llama.cpp fit" (the engine's own dry run), "analytic" (this model) or "size-based" (the
    #: header lacks the model's shape: the file size plus allowances).
    source: str = SOURCE_ANALYTIC
    speed: SpeedPrediction | None = None
    #: A vision model's projector and one image's encoding (``core.estimate.vision``), counted in the totals.
    projector: ProjectorUsage | None = None

    @property
    def total_bytes(self) -> int:
        return sum(d.total for d in self.devices) + (self.projector.total if self.projector else 0)

    @property
    def resident_bytes(self) -> int:
        """Memory that must stay resident (``total_bytes`` less mapped pages the OS may drop after loading)."""
        return sum(d.resident for d in self.devices) + (self.projector.total if self.projector else 0)

    @property
    def host(self) -> DeviceUsage:
        return self.devices[0]

    @property
    def engine_bytes(self) -> int:
        """What llama.cpp itself reports (weights + repack + KV + compute + output), without overheads."""
        return sum(d.total - d.overhead for d in self.devices)

    def component(self, name: str) -> int:
        return sum(getattr(d, name) for d in self.devices)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "total_bytes": self.total_bytes,
            "resident_bytes": self.resident_bytes,
            "verdict": self.verdict.value,
            "verdict_text": self.verdict_text,
            "n_ctx": self.n_ctx,
            "gpu_layers": self.gpu_layers,
            "n_layer": self.n_layer,
            "max_context": self.max_context,
            "tokens_per_second": self.tokens_per_second,
            "bytes_per_token": self.bytes_per_token,
            "breakdown": {
                **{d.device: d.as_dict() for d in self.devices},
                **({"projector": self.projector.as_dict()} if self.projector else {}),
            },
            "settings": asdict(self.settings),
            "notes": list(self.notes),
            "source": self.source,
            "speed": None if self.speed is None else self.speed.as_dict(),
        }

    @property
    def verdict_text(self) -> str:
        if self.verdict is Verdict.PARTIAL:
            return f"Fits with {self.gpu_layers} of {self.n_layer + 1} layers on the GPU"
        return self.verdict.words
