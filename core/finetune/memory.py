"""Training memory before a fine-tune starts: the fit estimator's figure for these settings, the device budget,
and concrete advice (with the figure each change would give) when it does not fit."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import FinetuneError, UsageError
from core.estimate.training import TrainingEstimate, TrainingMethod, TrainingSettings, estimate_training
from core.finetune.types import FinetuneBackend, FinetuneConfig
from core.models.shape import ModelShape

if TYPE_CHECKING:
    from core.hardware import Hardware

logger = logging.getLogger(__name__)

KNOWN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class MemoryAdvice:
    change: str  # what to do, in words
    total_bytes: int  # the estimate after that change
    fits: bool


@dataclass(frozen=True)
class TrainingMemoryPlan:
    estimate: TrainingEstimate
    advice: tuple[MemoryAdvice, ...] = ()

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    def summary(self) -> str:
        need = _gib(self.estimate.total_bytes)
        if self.estimate.budget is None:
            return f"Training needs about {need}."
        have = _gib(self.estimate.budget)
        if self.fits:
            return f"Training needs about {need} of {have} available."
        return f"Training needs about {need} but only {have} is available."


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def training_settings(base_model: Path, config: FinetuneConfig, backend: FinetuneBackend) -> TrainingSettings:
    modules = tuple(m for m in config.target_modules if m in KNOWN_MODULES) or ("q_proj", "v_proj")
    weights = None
    if backend == FinetuneBackend.MLX:
        # MLX trains on the file's own weights (possibly quantized): their size is the base cost.
        weights = sum(f.stat().st_size for f in base_model.glob("*.safetensors")) or None
    return TrainingSettings(
        method=TrainingMethod.QLORA if config.quantize_4bit else TrainingMethod.LORA,
        rank=config.rank,
        target_modules=modules,
        layers_trained=None if config.num_layers == -1 else config.num_layers,
        batch_size=config.batch_size,
        seq_len=config.max_length,
        gradient_checkpointing=config.grad_checkpoint,
        engine=str(backend),
        base_weights_bytes=weights if not config.quantize_4bit else None,
    )


def plan_training_memory(
    base_model: str | Path,
    config: FinetuneConfig,
    backend: FinetuneBackend | str = FinetuneBackend.PEFT,
    hardware: Hardware | None = None,
) -> TrainingMemoryPlan:
    base = Path(base_model)
    backend = FinetuneBackend(backend)
    try:
        shape = ModelShape.from_config(json.loads((base / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise FinetuneError(f"Cannot read {base / 'config.json'} to size the model: {exc}") from exc
    except UsageError as exc:
        raise FinetuneError(str(exc)) from exc
    settings = training_settings(base, config, backend)
    estimate = estimate_training(shape, settings, hardware)
    if estimate.fits:
        return TrainingMemoryPlan(estimate)
    options: list[tuple[str, TrainingSettings]] = []
    if config.batch_size > 1:
        options.append((f"batch size 1 (from {config.batch_size})", replace(settings, batch_size=1)))
    if config.max_length > 512:
        options.append((f"maximum length 512 (from {config.max_length})", replace(settings, seq_len=512)))
    if not config.grad_checkpoint:
        options.append(("turn on gradient checkpointing", replace(settings, gradient_checkpointing=True)))
    if shape.n_layer > 8 and (config.num_layers == -1 or config.num_layers > 8):
        options.append(("train only the last 8 layers", replace(settings, layers_trained=8)))
    if not config.quantize_4bit:
        options.append(
            ("QLoRA (4-bit base weights)", replace(settings, method=TrainingMethod.QLORA, base_weights_bytes=None))
        )
    advice = []
    for change, alternative in options:
        other = estimate_training(shape, alternative, hardware)
        if other.total_bytes < estimate.total_bytes:  # only changes that help this model
            advice.append(MemoryAdvice(change, other.total_bytes, other.fits))
    advice.sort(key=lambda a: a.total_bytes)
    return TrainingMemoryPlan(estimate, tuple(advice))
