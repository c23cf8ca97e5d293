"""Memory and speed estimate for running a safetensors model with MLX (mlx-lm).

Weights are the tensors' bytes (MLX loads arrays whole). The KV cache grows in 256-token steps
(``mlx_lm.models.cache.KVCache.step``), sliding-window layers keep at most the window (``RotatingKVCache``),
quantized KV costs ``bits/8 + 1/16`` bytes per element (a scale and bias per 64). Prefill runs in chunks of
2048 tokens, whose logits and activations are the transient peak. The budget is Metal's recommended working
set (wired memory) on Apple Silicon, available RAM elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.models.shape import ModelShape

if TYPE_CHECKING:
    from core.hardware import Hardware
    from core.models.safetensors import SafetensorsModel

KV_STEP = 256
PREFILL_STEP = 2048
MLX_EFFICIENCY = 0.75
#: MLX's own allocator slack and the Python process (measured peaks sit a few percent above the sum).
OVERHEAD_FRACTION = 0.05
OVERHEAD_MIN = 300 * 1024 * 1024


@dataclass(frozen=True)
class MlxEstimate:
    weights: int
    kv: int
    transient: int
    overhead: int
    budget: int | None
    context_length: int
    max_context: int
    tokens_per_second: float | None

    @property
    def total_bytes(self) -> int:
        return self.weights + self.kv + self.transient + self.overhead

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total_bytes <= self.budget

    def as_dict(self) -> dict[str, object]:
        return {
            "engine": "mlx",
            "total_bytes": self.total_bytes,
            "fits": self.fits,
            "verdict": "full_gpu" if self.fits else "does_not_fit",
            "breakdown": {
                "weights": self.weights,
                "kv": self.kv,
                "transient": self.transient,
                "overhead": self.overhead,
                "budget": self.budget,
            },
            "n_ctx": self.context_length,
            "max_context": self.max_context,
            "tokens_per_second": None if self.tokens_per_second is None else round(self.tokens_per_second, 2),
        }


def mlx_kv_bytes(shape: ModelShape, tokens: int, kv_bits: int | None = None) -> int:
    per_element = 2.0 if kv_bits is None else kv_bits / 8 + 1 / 16
    full = math.ceil(tokens / KV_STEP) * KV_STEP
    window = min(full, shape.sliding_window) if shape.sliding_window else full
    per_token = shape.n_head_kv * (shape.head_dim_k + shape.head_dim_v) * per_element
    swa = shape.n_swa_layers
    return int((shape.n_layer - swa) * full * per_token + swa * window * per_token)


def mlx_transient_bytes(shape: ModelShape, tokens: int) -> int:
    chunk = min(max(tokens, 1), PREFILL_STEP)
    logits = chunk * shape.vocab_size * 4  # the chunk's logits, upcast to float32 for sampling
    ff = shape.n_ff_expert * max(shape.n_expert_used, 1) if shape.n_expert else shape.n_ff
    activations = chunk * (4 * shape.n_embd + 3 * ff) * 2
    return logits + activations


def _budget(hardware: Hardware | None) -> int | None:
    if hardware is None:
        return None
    if hardware.engines.mlx_gpu:
        metal = hardware.engines.metal_budget_bytes or next(
            (g.budget_bytes for g in hardware.gpus if g.api == "metal"), None
        )
        if metal:
            return metal
    return hardware.ram_available_bytes or None


def estimate_mlx(
    model: SafetensorsModel, context_length: int = 4096, hardware: Hardware | None = None, kv_bits: int | None = None
) -> MlxEstimate:
    shape = ModelShape.from_config(model.config)
    weights = model.tensor_bytes
    budget = _budget(hardware)

    def total(tokens: int) -> tuple[int, int, int]:
        kv = mlx_kv_bytes(shape, tokens, kv_bits)
        transient = mlx_transient_bytes(shape, tokens)
        overhead = max(OVERHEAD_MIN, int(OVERHEAD_FRACTION * (weights + kv)))
        return kv, transient, overhead

    kv, transient, overhead = total(context_length)
    limit = max(shape.context_length, context_length)
    max_context = limit
    if budget is not None:
        lo, hi = 0, limit // KV_STEP
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if weights + sum(total(mid * KV_STEP)) <= budget:
                lo = mid
            else:
                hi = mid - 1
        max_context = lo * KV_STEP
    bandwidth = None
    if hardware is not None:
        apple = next((g for g in hardware.gpus if g.api == "metal"), None)
        bandwidth = apple.bandwidth_gbs if apple else hardware.ram_bandwidth_gbs
    per_token = weights + mlx_kv_bytes(shape, context_length // 2, kv_bits)
    if shape.n_expert and shape.n_expert_used:
        expert_bytes = shape.n_layer * shape.mlp_params_per_layer * weights / max(shape.parameter_count, 1)
        per_token -= int(expert_bytes * (1 - shape.n_expert_used / shape.n_expert))
    tps = MLX_EFFICIENCY * bandwidth * 1e9 / per_token if bandwidth and per_token > 0 else None
    return MlxEstimate(weights, kv, transient, overhead, budget, context_length, max_context, tps)
