"""Fine-tune defaults per backend, and three presets a newcomer can pick without knowing what a rank is.

The defaults follow what each trainer's own users start from, so a Hangar run learns as fast as the plain tool:

- **MLX** — mlx-lm 0.32's ``lora`` command (``mlx_lm/lora.py`` ``CONFIG_DEFAULTS``): rank 8, LoRA scale 20
  (alpha = 20 × rank), dropout 0, learning rate 1e-5, constant (no schedule), batch 4, and with no ``keys`` its
  ``linear_to_lora_layers`` adapts every linear layer of a block. mlx-lm adapts the last 16 blocks; Hangar adapts
  all of them (-1), which is the same on models up to 16 blocks and learns at least as well beyond.
- **PEFT** — the PEFT / Unsloth notebooks: r 16, alpha 32, lr 2e-4, every linear projection (q, k, v, o, gate,
  up, down), a linear decay after a few warm-up steps.

Presets change how long and how big a run is, keeping each backend's learning-rate and scale conventions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.finetune.types import ALL_LINEAR, FinetuneBackend, FinetuneConfig, LrSchedule

#: mlx-lm's LoRA scale (``lora_parameters.scale``); Hangar stores alpha, and scale = alpha / rank.
MLX_SCALE = 20.0


def default_config(backend: FinetuneBackend | str) -> FinetuneConfig:
    """The field's defaults for ``backend`` (see the module docstring)."""
    if FinetuneBackend(backend) == FinetuneBackend.MLX:
        return FinetuneConfig(
            rank=8,
            alpha=MLX_SCALE * 8,
            dropout=0.0,
            target_modules=ALL_LINEAR,
            num_layers=-1,
            learning_rate=1e-5,
            schedule=LrSchedule.CONSTANT,
            warmup_steps=0,
            batch_size=4,
        )
    return FinetuneConfig()


class Preset(enum.StrEnum):
    QUICK = "quick"
    BALANCED = "balanced"
    THOROUGH = "thorough"


@dataclass(frozen=True)
class PresetInfo:
    preset: Preset
    title: str
    #: One sentence for a tooltip or a radio button's description.
    description: str
    rank: int
    epochs: float


PRESETS: dict[Preset, PresetInfo] = {
    Preset.QUICK: PresetInfo(
        Preset.QUICK, "Quick", "One pass over your data with a small adapter: a first look in minutes.", 8, 1.0
    ),
    Preset.BALANCED: PresetInfo(
        Preset.BALANCED, "Balanced", "Three passes with a medium adapter: what most guides start from.", 16, 3.0
    ),
    Preset.THOROUGH: PresetInfo(
        Preset.THOROUGH,
        "Thorough",
        "Five passes with a larger adapter: learns more from a bigger dataset, takes longer.",
        32,
        5.0,
    ),
}


def preset_config(preset: Preset | str, backend: FinetuneBackend | str) -> FinetuneConfig:
    """``backend``'s defaults sized by ``preset``: the rank and the number of passes over the data change; the
    LoRA scale (alpha / rank) and the learning rate stay the backend's."""
    info = PRESETS[Preset(preset)]
    base = default_config(backend)
    return base.with_(rank=info.rank, alpha=base.scale * info.rank, epochs=info.epochs)
