"""Memory and speed estimate for loading a GGUF model with Hangar's llama.cpp engine.

The model is what ``backends/llama.py`` really configures through llama-cpp-python (n_batch = n_ubatch = 512,
flash attention off unless asked, K/V type, n_gpu_layers, a full-size sliding-window cache, one sequence), and
the buffer semantics of the bundled llama.cpp, checked against the sizes it reports after real loads
(``bench/estimate_accuracy.py``, ``tests/backends/test_estimate_vs_llama.py``):

- weights: a CPU ``CPU_Mapped`` buffer spanning the file range of the tensors it holds, plus the copies the CPU
  backend's extra buffer types make of the matrices they take (``CPU_REPACK``, ``AMX``, ``KLEIDIAI``: which types
  each takes is asked of the installed llama.cpp, ``core.hardware.EngineFacts``), plus device copies of offloaded
  layers. ``-ngl N`` offloads the output layer first, then the last N-1 blocks; the token embedding stays on CPU.
- KV: per layer ``ggml_row_size(type, n_embd_gqa) * kv_size`` for K and V, kv_size = n_ctx padded to 256.
- compute: the peak of the graph reserved for one micro-batch (n_ub tokens against all n_ctx cells), the
  largest of the attention, feed-forward and output (logits ``4 * n_ub * n_vocab``) phases.
- output: ``4 * n_vocab`` bytes per sequence on the host.

Where llama.cpp's own fit pass ran (``core.estimate.exact``), KV, compute and output come from it instead and the
estimate's ``source`` says "llama.cpp fit"; a header without shape data gets a size-based estimate, marked so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.errors import UsageError
from core.estimate.rpc import host_compute as rpc_host_compute
from core.estimate.rpc import output_compute as rpc_output_compute
from core.estimate.rpc import worker_compute as rpc_worker_compute
from core.estimate.speed import SpeedPrediction, predict
from core.estimate.types import (
    ASSUMED_REPACK,
    GIB,
    GPU_OVERHEAD,
    HOST_BASELINE,
    KV_TYPES,
    MIB,
    SOURCE_ANALYTIC,
    SOURCE_FIT,
    SOURCE_SIZE,
    DeviceUsage,
    EngineSettings,
    Estimate,
    Verdict,
)
from core.gguf.info import GGUFInfo, TensorInfo
from core.gguf.types import ggml_type_from_name, row_size

if TYPE_CHECKING:
    from core.hardware import Hardware

logger = logging.getLogger(__name__)


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


def _repackable(t: TensorInfo, repack: dict[str, float]) -> bool:
    # matrices used by mul_mat/mul_mat_id only: the embedding is read by get_rows, norms and routers are F32
    return (
        t.type_name in repack
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
        return _size_based(info, settings, hardware)
    facts = hardware.engines.facts if hardware is not None else None
    if settings.extra_buffers and facts is not None and facts.extra_buffers_crash:
        settings = replace(settings, extra_buffers=False)  # what the engine will load with here
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
    speed, per_token = _speed(layout, settings, hardware, gpus, ngl)
    notes = []
    if hardware is None:
        notes.append("No hardware information: budgets unknown, estimate for the CPU only.")
    n_ctx = _n_ctx(info, settings)
    if n_ctx > info.context_length > 0:
        notes.append(
            f"Context {n_ctx:,} is longer than the model was trained for ({info.context_length:,}): "
            "only with RoPE scaling, and quality may drop."
        )
    if not repack_table(hardware)[1]:
        notes.append("llama.cpp was not asked which weights it re-lays out here; the usual rules were assumed.")
    return Estimate(
        model=info.name,
        settings=settings,
        n_ctx=n_ctx,
        gpu_layers=ngl,
        n_layer=info.block_count,
        devices=devices,
        verdict=verdict,
        max_context=_max_context(layout, settings, hardware, gpus),
        tokens_per_second=speed.tokens_per_second if speed else None,
        bytes_per_token=per_token,
        notes=tuple(notes),
        speed=speed,
    )


def _size_based(info: GGUFInfo, settings: EngineSettings, hardware: Hardware | None) -> Estimate:
    """The header lacks the model's shape: weights are the file's bytes, plus allowances for the KV cache and the
    compute buffers that grow with the context (about 8% of the weights at 4,096 tokens, and 256 MiB)."""
    weights = info.weights_bytes or info.file_size or 0
    if weights <= 0:
        raise UsageError(
            f"{info.name}: the header lacks both the model's shape and its size; Hangar cannot estimate it."
        )
    ctx = settings.context_length or info.context_length or 4096
    kv = int(weights * 0.08 * max(ctx, 512) / 4096)
    compute = 256 * MIB
    gpus = _usable_gpus(hardware)
    host_budget = _host_budget(hardware, settings)
    on_gpu = bool(gpus) and settings.gpu_layers != 0
    devices: list[DeviceUsage] = []
    if on_gpu:
        gpu = gpus[0]
        device = DeviceUsage(
            gpu.device_name,
            weights=weights,
            kv=kv,
            compute=compute,
            overhead=GPU_OVERHEAD.get(gpu.api, 300 * MIB),
            budget=_gpu_budget(gpu, settings),
        )
        on_gpu = device.fits
        if on_gpu:
            host = DeviceUsage("CPU", output=4 * max(info.vocab_size, 0), overhead=HOST_BASELINE, budget=host_budget)
            devices = [host, device]
    if not on_gpu:
        host = DeviceUsage(
            "CPU",
            weights=weights,
            kv=kv,
            compute=compute,
            output=4 * max(info.vocab_size, 0),
            overhead=HOST_BASELINE,
            budget=host_budget,
        )
        devices = [host]
    fits = all(d.fits for d in devices)
    verdict = Verdict.TOO_LARGE if not fits else Verdict.FULL_GPU if on_gpu else Verdict.CPU_ONLY
    speed = predict(
        weights if not on_gpu else 0,
        weights if on_gpu else 0,
        0,
        host_gbs=hardware.ram_bandwidth_gbs if hardware is not None else None,
        gpu_gbs=gpus[0].bandwidth_gbs if on_gpu else None,
    )
    return Estimate(
        model=info.name,
        settings=settings,
        n_ctx=_pad(ctx, 256),
        gpu_layers=-1 if on_gpu else 0,
        n_layer=0,
        devices=tuple(devices),
        verdict=verdict,
        max_context=min(info.context_length, _pad(ctx, 256)) if info.context_length else _pad(ctx, 256),
        tokens_per_second=speed.tokens_per_second if speed else None,
        bytes_per_token=weights,
        notes=(
            f"The header of {info.name} lacks the model's shape ({info.architecture}): a size-based estimate "
            "(the file's size plus allowances for the context).",
        ),
        source=SOURCE_SIZE,
        speed=speed,
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
    repack = repack_table(hardware)[0] if settings.extra_buffers else {}
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
    rpc = any(g.api == "rpc" for g in gpus)
    if not gpus or ngl == 0:
        host_compute = compute
    elif len(cpu_blocks) == 0 and output_on_gpu and rpc:
        host_compute = rpc_host_compute(info, n_ctx, n_ub, settings.flash_attention)
    elif len(cpu_blocks) == 0 and output_on_gpu:
        host_compute = 4 * n_ub * (info.embedding_length + n_ctx)  # inputs only: embeddings and the mask
    else:
        host_compute = compute  # CPU layers run their own part of the graph
    span, reclaimable = _mapped_span(mapped, repacked) if mapped else (0, 0)
    host = DeviceUsage(
        "CPU",
        weights=span,
        reclaimable=reclaimable,
        repack=int(sum(t.n_bytes * repack[t.type_name] for t in repacked)),
        kv=host_kv,
        compute=host_compute,
        output=output_buf,
        overhead=HOST_BASELINE,
        budget=_host_budget(hardware, settings),
    )
    devices = [host]
    if gpus and ngl:
        shares = _split_blocks(list(gpu_blocks), gpus, output_on_gpu)
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
            if gpu.api == "rpc" and blocks:
                gpu_compute = rpc_worker_compute(info, compute, n_ctx, n_ub, settings.flash_attention)
            elif gpu.api == "rpc":
                gpu_compute = rpc_output_compute(info, n_ub) if last and output_on_gpu else 0
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


def _split_blocks(blocks: list[int], gpus: list[Any], output: bool = True) -> list[list[int]]:
    """llama.cpp's default layer split: the offloaded layers (the output layer counted as the last one) cut into
    contiguous ranges by the devices' cumulative share of free memory: layer ``i`` of ``n`` goes to the first
    device whose cumulative share exceeds ``i / n``."""
    if len(gpus) == 1:
        return [blocks]
    weights = [max(g.budget_bytes, 1) for g in gpus]
    total = sum(weights)
    bounds, running = [], 0
    for w in weights:
        running += w
        bounds.append(running / total)
    count = len(blocks) + (1 if output else 0)
    shares: list[list[int]] = [[] for _ in gpus]
    for position, block in enumerate(blocks):
        share = position / count
        shares[next((i for i, b in enumerate(bounds) if b > share), len(gpus) - 1)].append(block)
    return shares


def repack_table(hardware: Hardware | None) -> tuple[dict[str, float], bool]:
    """Tensor type → bytes the CPU backend's extra buffers hold per byte of such a matrix, and whether llama.cpp
    itself said so (False: it could not be asked, and the generic repack rules are assumed)."""
    facts = hardware.engines.facts if hardware is not None else None
    if facts is not None:
        table: dict[str, float] = {}
        for buffer in facts.extra_buffers:
            for type_name, ratio in buffer.types.items():
                table.setdefault(type_name, ratio)
        return table, True
    family = hardware.cpu_family if hardware is not None else "x86_avx2"
    return dict.fromkeys(ASSUMED_REPACK.get(family, frozenset()), 1.0), False


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
    """Largest context (a multiple of 256, at most the trained context: going beyond is an explicit RoPE-scaling
    choice, never an offer) that fits with the layer setting."""
    info = layout.info
    limit = info.context_length if info.context_length > 0 else _n_ctx(info, settings)
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
    layout: _Layout, settings: EngineSettings, hardware: Hardware | None, gpus: list[Any], ngl: int
) -> tuple[SpeedPrediction | None, int]:
    """Bytes a decoded token reads, per device (every weight except the embedding table, of which one row is
    read; MoE experts scaled by used/total; the KV cache of a half-full context), turned into a prediction
    from the bandwidth measured on this machine (``core.estimate.speed``)."""
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
    bandwidths = [g.bandwidth_gbs for g in gpus if g.bandwidth_gbs]
    speed = predict(
        cpu_bytes,
        gpu_bytes,
        n_layer,
        host_gbs=hardware.ram_bandwidth_gbs if hardware is not None else None,
        gpu_gbs=min(bandwidths) if bandwidths else None,
        engine_gbs=hardware.engines.facts.decode_gbs_for(cpu_bytes) if hardware and hardware.engines.facts else None,
    )
    return speed, int(cpu_bytes + gpu_bytes)


def context_bytes_per_token(info: GGUFInfo, kv_cache_type: str = "f16") -> float:
    """KV bytes one more token of context costs (all layers), for quick UI hints."""
    t = ggml_type_from_name(kv_cache_type)
    return _kv_bytes(info, range(info.block_count), 256, t, t, 256) / 256


__all__ = [
    "ASSUMED_REPACK",
    "GIB",
    "GPU_OVERHEAD",
    "HOST_BASELINE",
    "KV_TYPES",
    "MIB",
    "SOURCE_ANALYTIC",
    "SOURCE_FIT",
    "SOURCE_SIZE",
    "DeviceUsage",
    "EngineSettings",
    "Estimate",
    "Verdict",
    "context_bytes_per_token",
    "estimate_llama",
    "repack_table",
]
