"""Starter models for the first run: a short, curated list of well-known instruct models at sensible quants,
ranked by how well they fit this machine (largest that fits first). Sizes are the files' sizes on the Hub,
so the verdict is the quick, file-size-based one; the Discover page reads real headers for a precise estimate."""

from __future__ import annotations

from dataclasses import dataclass

from core.estimate.fitting import FitLevel, rough_fit_level
from core.estimate.units import format_bytes
from core.hardware import Hardware

_GB = 1_000_000_000


@dataclass(frozen=True)
class Suggestion:
    repo_id: str
    file: str | None  # None for an MLX repo (the whole folder)
    quant: str
    size_bytes: int
    params: str
    title: str
    blurb: str
    format: str = "gguf"  # "gguf" | "mlx"


CATALOGUE: tuple[Suggestion, ...] = (
    Suggestion(
        "bartowski/Qwen2.5-14B-Instruct-GGUF",
        "Qwen2.5-14B-Instruct-Q4_K_M.gguf",
        "Q4_K_M",
        int(8.99 * _GB),
        "14B",
        "Qwen 2.5 14B Instruct",
        "Strong all-rounder for writing, code and reasoning.",
    ),
    Suggestion(
        "bartowski/gemma-2-9b-it-GGUF",
        "gemma-2-9b-it-Q4_K_M.gguf",
        "Q4_K_M",
        int(5.76 * _GB),
        "9B",
        "Gemma 2 9B Instruct",
        "Fluent, well-mannered writing assistant from Google.",
    ),
    Suggestion(
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        "Q4_K_M",
        int(4.92 * _GB),
        "8B",
        "Llama 3.1 8B Instruct",
        "Popular general-purpose chat model, 128k context.",
    ),
    Suggestion(
        "bartowski/Qwen2.5-7B-Instruct-GGUF",
        "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "Q4_K_M",
        int(4.68 * _GB),
        "7B",
        "Qwen 2.5 7B Instruct",
        "Good at code and structured answers for its size.",
    ),
    Suggestion(
        "bartowski/Llama-3.2-3B-Instruct-GGUF",
        "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        "Q4_K_M",
        int(2.02 * _GB),
        "3B",
        "Llama 3.2 3B Instruct",
        "Quick and light; runs well on most laptops.",
    ),
    Suggestion(
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        "Q4_K_M",
        int(0.81 * _GB),
        "1B",
        "Llama 3.2 1B Instruct",
        "Tiny and fast, for older machines.",
    ),
    Suggestion(
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        "Q4_K_M",
        int(0.49 * _GB),
        "0.5B",
        "Qwen 2.5 0.5B Instruct",
        "The smallest useful chat model; runs anywhere.",
    ),
    Suggestion(
        "mlx-community/Qwen2.5-7B-Instruct-4bit",
        None,
        "4bit",
        int(4.28 * _GB),
        "7B",
        "Qwen 2.5 7B Instruct (MLX)",
        "Native Apple Silicon build for MLX.",
        "mlx",
    ),
    Suggestion(
        "mlx-community/Llama-3.2-3B-Instruct-4bit",
        None,
        "4bit",
        int(1.82 * _GB),
        "3B",
        "Llama 3.2 3B Instruct (MLX)",
        "Native Apple Silicon build for MLX.",
        "mlx",
    ),
)


#: Below this decode speed a chat feels sluggish; such models are offered only after faster ones.
COMFORTABLE_TOKENS_PER_SECOND = 8.0


@dataclass(frozen=True)
class RankedSuggestion:
    suggestion: Suggestion
    fit: FitLevel
    tokens_per_second: float | None  # a rough decode speed: bandwidth ÷ bytes read per token


def rough_speed(size_bytes: int, fit: FitLevel, hardware: Hardware | None) -> float | None:
    """Decode speed is bound by memory bandwidth: every token reads all the weights once. Through the estimator's
    speed model (``core.estimate.speed``): llama.cpp's own decode measured here when known, capped and rounded."""
    from core.estimate.speed import predict

    if hardware is None or size_bytes <= 0:
        return None
    on_gpu = fit == FitLevel.FITS and hardware.gpus and hardware.engines.llama_gpu_offload
    if on_gpu:
        bandwidth = max((g.bandwidth_gbs or 200.0) for g in hardware.gpus)
        speed = predict(0, size_bytes, 0, host_gbs=hardware.ram_bandwidth_gbs, gpu_gbs=bandwidth)
    else:
        # Few cores cannot use all of the RAM bandwidth; about 10 GB/s a core is what CPUs sustain here.
        bandwidth = min(hardware.ram_bandwidth_gbs or 50.0, 10.0 * max(1, hardware.cpu_cores))
        facts = hardware.engines.facts
        speed = predict(
            size_bytes, 0, 0, host_gbs=bandwidth, gpu_gbs=None, engine_gbs=facts.decode_gbs if facts else None
        )
    return speed.tokens_per_second if speed else None


def suggest(
    hardware: Hardware | None,
    *,
    count: int = 3,
    context_length: int = 4096,
    catalogue: tuple[Suggestion, ...] = CATALOGUE,
) -> list[RankedSuggestion]:
    """The ``count`` best starters for this machine: the largest that fit fully first, then smaller ones; a
    model that only fits partly is offered when nothing larger fits; nothing that does not fit at all. MLX
    builds are offered only where MLX runs on the GPU (Apple Silicon)."""
    mlx_ok = bool(hardware and hardware.engines.mlx_gpu)
    candidates = [s for s in catalogue if s.format == "gguf" or mlx_ok]
    ranked = []
    for s in candidates:
        fit = rough_fit_level(s.size_bytes, hardware, context_length)
        ranked.append(RankedSuggestion(s, fit, rough_speed(s.size_bytes, fit, hardware)))
    order = {FitLevel.FITS: 0, FitLevel.PARTIAL: 1, FitLevel.UNKNOWN: 2, FitLevel.TOO_LARGE: 3}
    usable = [r for r in ranked if r.fit != FitLevel.TOO_LARGE]

    def key(r: RankedSuggestion) -> tuple[int, bool, bool, int]:
        slow = r.tokens_per_second is not None and r.tokens_per_second < COMFORTABLE_TOKENS_PER_SECOND
        prefer_other_format = (r.suggestion.format != "mlx") if mlx_ok else False
        # Comfortable models: the largest (best) first. Slow ones: the fastest (smallest) first.
        size = r.suggestion.size_bytes
        return (order[r.fit], slow, prefer_other_format, size if slow else -size)

    usable.sort(key=key)
    return usable[:count]


def describe_hardware(hardware: Hardware) -> str:
    """The machine in plain words, in the window's one unit system: "NVIDIA GeForce RTX 4070, 11.2 GiB free;
    32 GiB RAM (26 GiB free)"."""
    parts = []
    for gpu in hardware.gpus:
        if gpu.unified_memory and gpu.vendor == "apple":
            parts.append(f"{gpu.name}, {format_bytes(gpu.budget_bytes, digits=0)} usable by the GPU")
        elif gpu.free_bytes is not None:
            parts.append(f"{gpu.name}, {format_bytes(gpu.free_bytes)} free")
        else:
            parts.append(f"{gpu.name}, {format_bytes(gpu.total_bytes, digits=0)}")
    if not hardware.gpus:
        parts.append(f"{hardware.cpu_name} ({hardware.cpu_cores} cores), no GPU that Hangar can use")
    total, free = format_bytes(hardware.ram_total_bytes, digits=0), format_bytes(hardware.ram_available_bytes, digits=0)
    ram = f"{total} RAM ({free} free)"
    return "; ".join([*parts, ram])


#: The embedding model Discover suggests "For your documents": it ranks passages by meaning for the document index
#: (``core.docs``). nomic-embed-text v1.5 (a ``nomic-bert``, 137M parameters, 2048 tokens here), Q8_0: about 146 MB,
#: near-lossless against F16, fast on any CPU.
EMBEDDING_SUGGESTION = Suggestion(
    "nomic-ai/nomic-embed-text-v1.5-GGUF",
    "nomic-embed-text-v1.5.Q8_0.gguf",
    "Q8_0",
    146_000_000,
    "137M",
    "nomic-embed-text v1.5",
    "Finds passages in your documents by meaning, not only by their words.",
)
