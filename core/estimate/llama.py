"""Memory and speed estimate for loading a GGUF model with Hangar's llama.cpp engine.

The model is what ``backends/llama.py`` really configures through llama-cpp-python (n_batch = n_ubatch = 512,
flash attention off unless asked, K/V type, n_gpu_layers, a full-size sliding-window cache, one sequence), and
the buffer semantics of the bundled llama.cpp, calibrated against the sizes it logs after real loads
(``bench/estimate_accuracy.py``):

- weights: a CPU ``CPU_Mapped`` buffer spanning the file range of the tensors it holds, plus ``CPU_REPACK``
  copies of the matrices the CPU backend re-lays out (Q4_0/Q4_K/IQ4_NL on AVX2 and ARM), plus device copies of
  offloaded layers. ``-ngl N`` offloads the output layer first, then the last N-1 blocks; the token embedding
  stays on CPU.
- KV: per layer ``ggml_row_size(type, n_embd_gqa) * kv_size`` for K and V, kv_size = n_ctx padded to 256.
- compute: the peak of the graph reserved for one micro-batch (n_ub tokens against all n_ctx cells), the
  largest of the attention, feed-forward and output (logits ``4 * n_ub * n_vocab``) phases.
- output: ``4 * n_vocab`` bytes per sequence on the host.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.errors import UsageError
from core.gguf.info import GGUFInfo, TensorInfo
from core.gguf.types import ggml_type_from_name, row_size

if TYPE_CHECKING:
    from core.hardware import Hardware

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
GIB = 1024 * MIB
KV_TYPES = ("f16", "bf16", "f32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")
#: CUDA/ROCm context, cuBLAS workspace and pool (llama.cpp PR #15860 measured 451-456 MiB; Ollama uses 457).
GPU_OVERHEAD = {
    "cuda": 450 * MIB,
    "rocm": 450 * MIB,
    "metal": 0,
    "vulkan": 300 * MIB,
    "sycl": 400 * MIB,
    "rpc": 0,  # a worker's CPU backend needs no driver context; its process is the worker machine's business
}
#: What the process itself needs besides llama.cpp's buffers (interpreter, libraries, tokenizer tables).
HOST_BASELINE = 150 * MIB
#: Achieved fraction of peak memory bandwidth during decode (llama.cpp: 0.6-0.85 on GPUs, lower on CPUs).
GPU_EFFICIENCY = 0.7
CPU_EFFICIENCY = 0.55
#: Fallback host bandwidth when nothing better is known (dual-channel DDR4/DDR5 desktop).
DEFAULT_HOST_BANDWIDTH_GBS = 50.0
#: Types the CPU backend repacks for faster matmuls, per CPU family (ggml-cpu ``repack.cpp``).
REPACK_TYPES = {
    "x86_avx2": frozenset({"Q4_0", "Q4_K", "IQ4_NL", "Q2_K"}),
    "arm": frozenset({"Q4_0", "Q4_K", "IQ4_NL", "Q8_0"}),
    "none": frozenset(),
}


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

    @property
    def total_bytes(self) -> int:
        return sum(d.total for d in self.devices)

    @property
    def resident_bytes(self) -> int:
        """Memory that must stay resident (``total_bytes`` less mapped pages the OS may drop after loading)."""
        return sum(d.resident for d in self.devices)

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
            "tokens_per_second": None if self.tokens_per_second is None else round(self.tokens_per_second, 2),
            "bytes_per_token": self.bytes_per_token,
            "breakdown": {d.device: d.as_dict() for d in self.devices},
            "settings": asdict(self.settings),
            "notes": list(self.notes),
        }

    @property
    def verdict_text(self) -> str:
        if self.verdict is Verdict.PARTIAL:
            return f"Fits with {self.gpu_layers} of {self.n_layer + 1} layers on the GPU"
        return self.verdict.words


# -- the model, grouped the way llama.cpp places it ----------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    info: GGUFInfo
    blocks: tuple[tuple[TensorInfo, ...], ...]  # per block
    input: tuple[TensorInfo, ...]  # token embedding & friends: always on the CPU
    output: tuple[TensorInfo, ...]  # output norm and head: the "output layer"


def _layout(info: GGUFInfo) -> _Layout:
    blocks: list[list[TensorInfo]] = [[] for _ in range(info.block_count)]
    inp: list[TensorInfo] = []
    out: list[TensorInfo] = []
    for t in info.tensors:
        layer = t.layer
        if layer is not None and layer < info.block_count:
            blocks[layer].append(t)
        elif t.name.startswith("output") or t.name.startswith("cls"):
            out.append(t)
        else:
            inp.append(t)
    return _Layout(info, tuple(tuple(b) for b in blocks), tuple(inp), tuple(out))


def _repackable(t: TensorInfo, repack_types: frozenset[str]) -> bool:
    # matrices used by mul_mat/mul_mat_id only: the embedding is read by get_rows, norms and routers are F32
    return (
        t.type_name in repack_types
        and len(t.shape) >= 2
        and t.shape[1] % 8 == 0
        and not t.name.startswith("token_embd")
        and "norm" not in t.name
    )


def _mapped_span(tensors: list[TensorInfo], repacked: list[TensorInfo]) -> tuple[int, int]:
    """The CPU_Mapped buffer covers, per file, the range from its first to its last CPU tensor; returns its size
    and the bytes of repacked tensors lying inside it (mapped, read once, then reclaimable)."""
    total = reclaimable = 0
    for shard in {t.shard for t in tensors}:
        part = [t for t in tensors if t.shard == shard]
        lo = min(t.offset for t in part)
        hi = max(t.offset + t.n_bytes for t in part)
        total += hi - lo
        reclaimable += sum(t.n_bytes for t in repacked if t.shard == shard and lo <= t.offset < hi)
    return total, reclaimable


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def _kv_bytes(info: GGUFInfo, layers: range, kv_size: int, type_k: int, type_v: int, swa_size: int) -> int:
    total = 0
    for il in layers:
        heads = info.head_count_kv[il] if il < len(info.head_count_kv) else 0
        if heads <= 0:
            continue
        swa = info.swa_layers[il] if il < len(info.swa_layers) else False
        k_len = info.key_length_swa if swa else info.key_length
        v_len = info.value_length_swa if swa else info.value_length
        cells = swa_size if swa else kv_size
        total += (row_size(type_k, k_len * heads) + row_size(type_v, v_len * heads)) * cells
    return total


def _compute_bytes(info: GGUFInfo, n_ctx: int, n_ub: int, flash: bool, quantized_kv: bool = False) -> int:
    """Peak of llama.cpp's reserved graph for one micro-batch: calibrated on the bundled build's CPU
    backend."""
    n_embd = info.embedding_length
    n_head = max(info.head_count or (0,))
    n_q = n_head * max(info.key_length, info.key_length_swa)
    has_swa = any(info.swa_layers)
    n_masks = 2 if has_swa and not all(info.swa_layers) else 1
    mask = n_masks * n_ctx * n_ub * (2 if flash else 4)
    f32 = 4 * n_ub
    if info.expert_count:
        n_ff_exp = _expert_ff(info)
        n_ff = n_ff_exp * max(info.expert_used_count, 1)
    else:
        n_ff = info.feed_forward_length
    n_kv_dim = max((h * max(info.key_length, info.key_length_swa) for h in info.head_count_kv), default=0)
    activations = max(3 * n_embd + 3 * n_q, 3 * n_embd + 2 * n_q + 2 * n_kv_dim)
    attention = mask + f32 * activations + (0 if flash else f32 * n_ctx * n_head)
    # gemma's extra post-attention/post-FFN norms keep one more row of n_embd alive through the FFN
    post_norms = n_embd if info.architecture.startswith("gemma") else 0
    ffn = mask + f32 * (3 * n_ff + 4 * n_embd + post_norms)
    logits = f32 * (info.vocab_size + 2 * n_embd + (0 if flash else n_embd))
    # Flash attention over a quantized cache keeps an f32 row per query for the whole layer (measured: the peak
    # grows by about 4 * n_ub * n_q bytes whichever phase sets it).
    quantized_fa = f32 * n_q if flash and quantized_kv else 0
    return max(attention, ffn, logits) + quantized_fa + f32 * 8  # + a few small inputs (positions, ids)


def _expert_ff(info: GGUFInfo) -> int:
    value = info.metadata.get(f"{info.architecture}.expert_feed_forward_length")
    if isinstance(value, int) and value > 0:
        return value
    for t in info.tensors:
        if t.name.endswith("ffn_up_exps.weight") and len(t.shape) >= 2:
            return t.shape[1]
    return info.feed_forward_length


# -- the estimate --------------------------------------------------------------------------------------------
def estimate_llama(
    info: GGUFInfo, settings: EngineSettings = EngineSettings(), hardware: Hardware | None = None
) -> Estimate:
    """Estimate what loading ``info`` with ``settings`` needs on ``hardware`` (None: this machine unknown →
    no budgets, CPU only). ``settings.gpu_layers=None`` picks the most layers that fit."""
    if info.block_count <= 0 or info.embedding_length <= 0:
        raise UsageError(
            f"{info.name}: the header lacks the shape of the model ({info.architecture}); Hangar cannot estimate it."
        )
    layout = _layout(info)
    gpus = _usable_gpus(hardware)
    n_total = info.block_count + 1
    if settings.gpu_layers is None:
        ngl = _auto_layers(layout, settings, hardware, gpus) if gpus else 0
    else:
        ngl = n_total if settings.gpu_layers < 0 else min(settings.gpu_layers, n_total)
        if not gpus:
            ngl = 0
    devices = _place(layout, settings, hardware, gpus, ngl)
    fits = all(d.fits for d in devices)
    if not fits:
        verdict = Verdict.TOO_LARGE
    elif ngl == 0:
        verdict = Verdict.CPU_ONLY
    elif ngl >= n_total:
        verdict = Verdict.FULL_GPU
    else:
        verdict = Verdict.PARTIAL
    tps, per_token = _speed(layout, settings, hardware, gpus, ngl, devices)
    notes = []
    if hardware is None:
        notes.append("No hardware information: budgets unknown, estimate for the CPU only.")
    n_ctx = _n_ctx(info, settings)
    if n_ctx > info.context_length > 0:
        notes.append(f"Context {n_ctx} is longer than the model was trained for ({info.context_length}).")
    return Estimate(
        model=info.name,
        settings=settings,
        n_ctx=n_ctx,
        gpu_layers=ngl,
        n_layer=info.block_count,
        devices=devices,
        verdict=verdict,
        max_context=_max_context(layout, settings, hardware, gpus),
        tokens_per_second=tps,
        bytes_per_token=per_token,
        notes=tuple(notes),
    )


def _n_ctx(info: GGUFInfo, settings: EngineSettings) -> int:
    ctx = settings.context_length or info.context_length or 4096
    return _pad(ctx, 256)


def _usable_gpus(hardware: Hardware | None) -> list[Any]:
    if hardware is None or not hardware.engines.llama_gpu_offload:
        return []
    return [g for g in hardware.gpus if g.total_bytes > 0]


def _gpu_budget(gpu: Any, settings: EngineSettings) -> int:
    free = gpu.budget_bytes
    return max(0, free - settings.gpu_margin)


def _host_budget(hardware: Hardware | None, settings: EngineSettings) -> int | None:
    if hardware is None or not hardware.ram_available_bytes:
        return None
    return max(0, hardware.ram_available_bytes - settings.host_margin)


def _place(
    layout: _Layout, settings: EngineSettings, hardware: Hardware | None, gpus: list[Any], ngl: int
) -> tuple[DeviceUsage, ...]:
    info = layout.info
    n_layer = info.block_count
    n_ctx = _n_ctx(info, settings)
    n_ub = min(settings.n_ubatch, settings.n_batch, n_ctx)
    type_k = ggml_type_from_name(settings.kv_cache_type)
    type_v = type_k
    kv_size = n_ctx
    swa_size = kv_size if settings.swa_full else min(kv_size, _pad(info.sliding_window * settings.n_seq + n_ub, 256))
    repack = _repack_types(hardware)
    first_gpu_block = n_layer + 1 - ngl if ngl else n_layer + 1  # blocks >= this go to GPUs
    cpu_blocks = range(0, min(first_gpu_block, n_layer))
    gpu_blocks = range(min(first_gpu_block, n_layer), n_layer)
    output_on_gpu = ngl >= 1
    cpu_tensors = list(layout.input) + [t for il in cpu_blocks for t in layout.blocks[il]]
    if not output_on_gpu:
        cpu_tensors += list(layout.output)
    repacked = [t for t in cpu_tensors if _repackable(t, repack)]
    mapped = [t for t in cpu_tensors if not _repackable(t, repack)]
    compute = _compute_bytes(
        info, n_ctx, n_ub, settings.flash_attention, settings.kv_cache_type not in ("f16", "bf16", "f32")
    )
    output_buf = 4 * info.vocab_size * settings.n_seq
    host_kv = _kv_bytes(info, cpu_blocks, kv_size, type_k, type_v, swa_size)
    if not gpus or ngl == 0:
        host_compute = compute
    elif len(cpu_blocks) == 0 and output_on_gpu:
        host_compute = 4 * n_ub * (info.embedding_length + n_ctx)  # inputs only: embeddings and the mask
    else:
        host_compute = compute  # CPU layers run their own part of the graph
    span, reclaimable = _mapped_span(mapped, repacked) if mapped else (0, 0)
    host = DeviceUsage(
        "CPU",
        weights=span,
        reclaimable=reclaimable,
        repack=sum(t.n_bytes for t in repacked),
        kv=host_kv,
        compute=host_compute,
        output=output_buf,
        overhead=HOST_BASELINE,
        budget=_host_budget(hardware, settings),
    )
    devices = [host]
    if gpus and ngl:
        shares = _split_blocks(list(gpu_blocks), gpus)
        for index, (gpu, blocks) in enumerate(zip(gpus, shares, strict=True)):
            last = index == len(gpus) - 1
            tensors = [t for il in blocks for t in layout.blocks[il]]
            weights = sum(t.n_bytes for t in tensors)
            if last and output_on_gpu:
                weights += sum(t.n_bytes for t in layout.output)
                if info.tied_embeddings:  # llama.cpp duplicates token_embd as the output head
                    embd = info.tensor("token_embd.weight")
                    weights += embd.n_bytes if embd else 0
            kv = sum(_kv_bytes(info, range(il, il + 1), kv_size, type_k, type_v, swa_size) for il in blocks)
            partial = ngl < n_layer + 1
            gpu_compute = int(compute * (1.3 if partial and not info.is_moe else 2.7 if partial else 1.0))
            devices.append(
                DeviceUsage(
                    gpu.device_name,
                    weights=weights,
                    kv=kv,
                    compute=gpu_compute,
                    overhead=GPU_OVERHEAD.get(gpu.api, 300 * MIB),
                    budget=_gpu_budget(gpu, settings),
                )
            )
        if hardware is not None and any(g.unified_memory for g in gpus):
            # Apple/UMA: GPU buffers come out of the same RAM; the host budget must hold them too.
            used = sum(d.total for d in devices[1:])
            budget = host.budget
            devices[0] = replace(host, budget=None if budget is None else max(0, budget - used))
    return tuple(devices)


def _split_blocks(blocks: list[int], gpus: list[Any]) -> list[list[int]]:
    """llama.cpp's default layer split: contiguous ranges proportional to each GPU's free memory."""
    if len(gpus) == 1:
        return [blocks]
    weights = [max(g.budget_bytes, 1) for g in gpus]
    total = sum(weights)
    shares: list[list[int]] = []
    start = 0
    for i, w in enumerate(weights):
        end = len(blocks) if i == len(gpus) - 1 else start + round(len(blocks) * w / total)
        shares.append(blocks[start:end])
        start = end
    return shares


def _repack_types(hardware: Hardware | None) -> frozenset[str]:
    if hardware is None:
        return REPACK_TYPES["x86_avx2"]
    return REPACK_TYPES.get(hardware.cpu_family, frozenset())


def _auto_layers(layout: _Layout, settings: EngineSettings, hardware: Hardware | None, gpus: list[Any]) -> int:
    """The most layers (output layer first) whose buffers fit every GPU; memory grows with layers, so
    bisect."""
    lo, hi = 0, layout.info.block_count + 1
    if all(d.fits for d in _place(layout, settings, hardware, gpus, hi)):
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        devices = _place(layout, settings, hardware, gpus, mid)
        if all(d.fits for d in devices[1:]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _max_context(layout: _Layout, settings: EngineSettings, hardware: Hardware | None, gpus: list[Any]) -> int:
    """Largest context (a multiple of 256, at most the trained context) that fits with the layer setting."""
    info = layout.info
    limit = max(info.context_length, _n_ctx(info, settings))
    if hardware is None:
        return limit

    def fits(ctx: int) -> bool:
        trial = replace(settings, context_length=ctx)
        if settings.gpu_layers is None and gpus:
            ngl = _auto_layers(layout, trial, hardware, gpus)
        else:
            n_total = info.block_count + 1
            ngl = (
                0
                if not gpus
                else (n_total if (settings.gpu_layers or 0) < 0 else min(settings.gpu_layers or 0, n_total))
            )
        return all(d.fits for d in _place(layout, trial, hardware, gpus, ngl))

    lo, hi = 0, limit // 256
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * 256):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


def _speed(
    layout: _Layout,
    settings: EngineSettings,
    hardware: Hardware | None,
    gpus: list[Any],
    ngl: int,
    devices: tuple[DeviceUsage, ...],
) -> tuple[float | None, int]:
    """Decode tokens/s ≈ efficiency × bandwidth ÷ bytes read per token, summed over devices in sequence.

    Bytes read: every weight except the embedding table (one row per token), MoE experts scaled by
    used/total, and the KV cache of a half-full context."""
    info = layout.info
    n_ctx = _n_ctx(info, settings)
    expert_share = (info.expert_used_count / info.expert_count) if info.is_moe else 1.0

    def read(t: TensorInfo) -> float:
        return t.n_bytes * (expert_share if t.is_expert else 1.0)

    n_layer = info.block_count
    first_gpu_block = n_layer + 1 - ngl if ngl else n_layer + 1
    type_k = ggml_type_from_name(settings.kv_cache_type)
    per_block_kv = [_kv_bytes(info, range(il, il + 1), n_ctx // 2, type_k, type_k, n_ctx // 2) for il in range(n_layer)]
    cpu_bytes = sum(read(t) for il in range(min(first_gpu_block, n_layer)) for t in layout.blocks[il])
    cpu_bytes += sum(per_block_kv[: min(first_gpu_block, n_layer)])
    gpu_bytes = sum(read(t) for il in range(min(first_gpu_block, n_layer), n_layer) for t in layout.blocks[il])
    gpu_bytes += sum(per_block_kv[min(first_gpu_block, n_layer) :])
    head = sum(read(t) for t in layout.output)
    if info.tied_embeddings:
        embd = info.tensor("token_embd.weight")
        head += embd.n_bytes if embd else 0
    if ngl >= 1 and gpus:
        gpu_bytes += head
    else:
        cpu_bytes += head
    host_bw = (
        hardware.ram_bandwidth_gbs
        if hardware is not None and hardware.ram_bandwidth_gbs
        else DEFAULT_HOST_BANDWIDTH_GBS
    )
    seconds = cpu_bytes / (CPU_EFFICIENCY * host_bw * 1e9)
    if gpu_bytes:
        bandwidths = [g.bandwidth_gbs for g in gpus if g.bandwidth_gbs]
        if not bandwidths:
            return None, int(cpu_bytes + gpu_bytes)
        seconds += gpu_bytes / (GPU_EFFICIENCY * min(bandwidths) * 1e9)
    total = int(cpu_bytes + gpu_bytes)
    return (1.0 / seconds if seconds > 0 else None), total


def context_bytes_per_token(info: GGUFInfo, kv_cache_type: str = "f16") -> float:
    """KV bytes one more token of context costs (all layers), for quick UI hints."""
    t = ggml_type_from_name(kv_cache_type)
    return _kv_bytes(info, range(info.block_count), 256, t, t, 256) / 256


__all__ = [
    "DeviceUsage",
    "EngineSettings",
    "Estimate",
    "Verdict",
    "context_bytes_per_token",
    "estimate_llama",
]
