"""Memory estimate for LoRA / QLoRA fine-tuning (PEFT on CUDA/CPU, or mlx-lm LoRA on Apple Silicon).

    total = base weights + adapters + gradients and optimizer states + activations + logits + overhead

Base weights: bf16 (2 B/param); QLoRA NF4 ≈ 0.516 B/param on the linear layers with embeddings and head kept in
bf16; MLX uses the file's own size. Adapters: ``r·(d_in + d_out)`` per adapted linear layer, fp32. AdamW keeps
two fp32 moments, plus the fp32 gradient: 12 B per trainable parameter (8-bit Adam: 6 B). Activations per token
and trained layer: ``2·h`` bf16 with gradient checkpointing (plus one layer recomputed), else ``12·h + 8·n_ff``
(FlashAttention-style attention, Korthikanti et al. 2022). Logits: fp32 ``V`` per token, ×3 for softmax and its
gradient unless the loss is chunked.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from core.errors import UsageError
from core.models.shape import ModelShape

if TYPE_CHECKING:
    from core.hardware import Hardware

GIB = 1024**3
#: (d_in, d_out) of each projection as a function of the shape
_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FRAMEWORK_OVERHEAD = {"peft": int(0.6 * GIB), "mlx": int(0.3 * GIB)}


class TrainingMethod(enum.StrEnum):
    LORA = "lora"
    QLORA = "qlora"


@dataclass(frozen=True)
class TrainingSettings:
    method: TrainingMethod = TrainingMethod.LORA
    rank: int = 8
    target_modules: tuple[str, ...] = _MODULES
    layers_trained: int | None = None  # None = every layer; mlx-lm's default is the last 16
    batch_size: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = True
    optimizer_8bit: bool = False
    chunked_loss: bool = False
    engine: str = "peft"  # "peft" | "mlx"
    #: MLX or an already-quantized base: the weights' real size in bytes (file sizes), overriding the formula.
    base_weights_bytes: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.target_modules) - set(_MODULES)
        if unknown:
            raise UsageError(f"Unknown LoRA target module(s): {', '.join(sorted(unknown))}.")
        if self.rank <= 0 or self.batch_size <= 0 or self.seq_len <= 0:
            raise UsageError("Rank, batch size and sequence length must be positive.")


@dataclass(frozen=True)
class TrainingEstimate:
    base_weights: int
    adapters: int
    optimizer: int  # gradients + optimizer states of the adapters
    activations: int
    logits: int
    overhead: int
    trainable_parameters: int
    budget: int | None

    @property
    def total_bytes(self) -> int:
        return self.base_weights + self.adapters + self.optimizer + self.activations + self.logits + self.overhead

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total_bytes <= self.budget

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "total_bytes": self.total_bytes, "fits": self.fits}


def _dims(shape: ModelShape, module: str) -> tuple[int, int]:
    q = shape.n_head * shape.head_dim_k
    kv = shape.n_head_kv * shape.head_dim_k
    ff = shape.n_ff_expert or shape.n_ff if shape.n_expert else shape.n_ff
    return {
        "q_proj": (shape.n_embd, q),
        "k_proj": (shape.n_embd, kv),
        "v_proj": (shape.n_embd, kv),
        "o_proj": (q, shape.n_embd),
        "gate_proj": (shape.n_embd, ff),
        "up_proj": (shape.n_embd, ff),
        "down_proj": (ff, shape.n_embd),
    }[module]


def lora_parameters(shape: ModelShape, settings: TrainingSettings) -> int:
    layers = min(settings.layers_trained or shape.n_layer, shape.n_layer)
    per_layer = 0
    for module in settings.target_modules:
        d_in, d_out = _dims(shape, module)
        copies = shape.n_expert if shape.n_expert and module in ("gate_proj", "up_proj", "down_proj") else 1
        per_layer += settings.rank * (d_in + d_out) * copies
    return per_layer * layers


def _budget(hardware: Hardware | None, engine: str) -> int | None:
    if hardware is None:
        return None
    if engine == "mlx" and hardware.engines.metal_budget_bytes:
        return hardware.engines.metal_budget_bytes
    cuda = [g for g in hardware.gpus if g.api == "cuda"]
    if engine == "peft" and cuda:
        return max(g.budget_bytes for g in cuda)
    return hardware.ram_available_bytes or None


def estimate_training(
    shape: ModelShape, settings: TrainingSettings = TrainingSettings(), hardware: Hardware | None = None
) -> TrainingEstimate:
    embed_params = shape.vocab_size * shape.n_embd * (1 if shape.tied_embeddings else 2)
    linear_params = max(shape.parameter_count - embed_params, 0)
    if settings.base_weights_bytes is not None:
        base = settings.base_weights_bytes
    elif settings.method is TrainingMethod.QLORA:
        base = int(linear_params * 0.516) + embed_params * 2
    else:
        base = shape.parameter_count * 2
    trainable = lora_parameters(shape, settings)
    adapters = trainable * 4
    optimizer = trainable * (6 if settings.optimizer_8bit else 12)
    tokens = settings.batch_size * settings.seq_len
    layers = min(settings.layers_trained or shape.n_layer, shape.n_layer)
    ff = shape.n_ff_expert * max(shape.n_expert_used, 1) if shape.n_expert else shape.n_ff
    full_layer = 12 * shape.n_embd + 8 * ff
    if settings.gradient_checkpointing:
        activations = tokens * (layers * 2 * shape.n_embd + full_layer)
    else:
        activations = tokens * layers * full_layer
    logits = 0 if settings.chunked_loss else tokens * shape.vocab_size * 4 * 3
    overhead = FRAMEWORK_OVERHEAD.get(settings.engine, FRAMEWORK_OVERHEAD["peft"])
    return TrainingEstimate(
        base, adapters, optimizer, activations, logits, overhead, trainable, _budget(hardware, settings.engine)
    )
