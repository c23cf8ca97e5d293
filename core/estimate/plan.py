"""Estimates for a load about to happen: GPU layers "auto" resolved by the estimator, the estimate of a load
(llama.cpp or MLX), the part of it the engine's report covers, the context a model gets by default (never more
than it was trained for), and advice after a load ran out of memory. The chat feature and the engines use these.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from core.engine.host import LoadOptions
from core.errors import HangarError

if TYPE_CHECKING:
    from core.estimate.llama import Estimate
    from core.estimate.mlx import MlxEstimate
    from core.hardware import Hardware

logger = logging.getLogger(__name__)

#: ``LoadOptions.gpu_layers`` value meaning "let the estimator choose" (resolved inside the engine process,
#: which knows whether its llama.cpp build can offload at all).
AUTO_GPU_LAYERS = -2
_MIB = 1024 * 1024


def trained_context(path: Path) -> int | None:
    """The context a GGUF model was trained for (from its header); None for other models or unreadable files."""
    if path.suffix.lower() != ".gguf" or not path.is_file():
        return None
    from core.gguf import read_gguf

    try:
        value = read_gguf(path).context_length
    except (HangarError, OSError, ValueError) as error:
        logger.info("no trained context for %s: %s", path, error)
        return None
    return value if value > 0 else None


def default_context(path: Path | None, preferred: int) -> int:
    """The context a load gets unless the user names one: the preferred default, never more than the model was
    trained for (going beyond needs RoPE scaling: an explicit choice, not a default)."""
    trained = trained_context(path) if path is not None else None
    return min(preferred, trained) if trained else preferred


def auto_gpu_layers(path: Path, options: LoadOptions, hardware: Hardware | None, *, gpu_offload: bool) -> int:
    """The GPU layers the estimator picks so the model fits with its margin; 0 on a CPU-only build or if the
    file cannot be estimated (a safe choice: slower, never out of memory on the GPU)."""
    if options.gpu_layers != AUTO_GPU_LAYERS:
        return options.gpu_layers
    if not gpu_offload or hardware is None:
        return 0
    estimate = estimate_load(path, options, hardware, gpu_layers=None)
    return estimate.gpu_layers if estimate is not None else 0


def estimate_load(
    path: Path, options: LoadOptions, hardware: Hardware | None, *, gpu_layers: int | None
) -> Estimate | None:
    """The estimator's figure for loading ``path`` (llama.cpp only); None when it cannot tell."""
    from core.estimate.llama import EngineSettings, estimate_llama
    from core.gguf import read_gguf

    try:
        settings = EngineSettings(
            context_length=options.context_length,
            gpu_layers=gpu_layers,
            kv_cache_type=options.kv_cache_type,
            flash_attention=options.flash_attention,
            extra_buffers=options.use_extra_bufts,
        )
        return estimate_llama(read_gguf(path), settings, hardware)
    except (HangarError, OSError, ValueError) as exc:
        logger.info("no estimate for %s: %s", path, exc)
        return None


def estimate_mlx_load(path: Path, options: LoadOptions, hardware: Hardware | None) -> MlxEstimate | None:
    """The MLX estimator's figure for an MLX folder; None when it cannot tell."""
    from core.estimate.mlx import estimate_mlx
    from core.models.safetensors import read_safetensors_dir

    kv_bits = {"q8_0": 8, "q4_0": 4}.get(options.kv_cache_type)
    try:
        return estimate_mlx(read_safetensors_dir(path), options.context_length, hardware, kv_bits)
    except (HangarError, OSError, ValueError, KeyError) as exc:
        logger.info("no MLX estimate for %s: %s", path, exc)
        return None


def estimated_bytes(estimate: Estimate | MlxEstimate | None) -> int | None:
    """The part of an estimate that the engine's own allocation report covers, for a side-by-side figure:
    llama.cpp's buffers; for MLX the weights (its KV cache grows later, while chatting)."""
    if estimate is None:
        return None
    if hasattr(estimate, "engine_bytes"):
        return int(estimate.engine_bytes)
    return int(estimate.weights)


def memory_advice(path: Path, options: LoadOptions, hardware: Hardware | None) -> str:
    """The estimator's advice after a load ran out of memory: what would fit on this machine."""
    if path.suffix.lower() != ".gguf":
        return "Try a smaller or more strongly quantized model."
    estimate = estimate_load(path, options, hardware, gpu_layers=None)
    if estimate is None:
        return "Try fewer GPU layers, a shorter context or a smaller quant."
    parts = [f"The estimator expects {estimate.total_bytes / (1024 * _MIB):.1f} GiB for this context."]
    if estimate.max_context and estimate.max_context < options.context_length:
        parts.append(f"A context of up to {estimate.max_context:,} tokens fits.")
    if estimate.gpu_layers and estimate.gpu_layers <= estimate.n_layer:
        parts.append(f"{estimate.gpu_layers} GPU layers fit.")
    parts.append("Otherwise choose a smaller quant.")
    return " ".join(parts)
