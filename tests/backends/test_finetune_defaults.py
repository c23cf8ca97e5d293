"""Hangar's fine-tune defaults against the installed trainers: mlx-lm's own CONFIG_DEFAULTS and what its
``linear_to_lora_layers`` adapts, and PEFT adapting every linear projection of every block."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.finetune.presets import default_config
from core.finetune.types import ALL_LINEAR


def test_mlx_defaults_match_the_installed_mlx_lm(tiny_hf_model: Path) -> None:
    pytest.importorskip("mlx_lm")
    from mlx_lm.lora import CONFIG_DEFAULTS
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    from backends.finetune_mlx import lora_keys

    ours = default_config("mlx")
    theirs = CONFIG_DEFAULTS["lora_parameters"]
    assert (ours.rank, ours.scale, ours.dropout) == (theirs["rank"], theirs["scale"], theirs["dropout"])
    assert ours.learning_rate == CONFIG_DEFAULTS["learning_rate"]
    assert ours.batch_size == CONFIG_DEFAULTS["batch_size"]
    assert CONFIG_DEFAULTS["lr_schedule"] is None and ours.schedule == "constant"
    assert CONFIG_DEFAULTS["optimizer"] == "adam" and CONFIG_DEFAULTS["optimizer_config"]["adam"] == {}

    # mlx-lm without keys adapts every linear layer of a block; our default targets name exactly those
    plain, _ = load(str(tiny_hf_model))[:2]  # type: ignore[misc]
    plain.freeze()
    linear_to_lora_layers(plain, len(plain.layers), {"rank": 8, "scale": 20.0, "dropout": 0.0})
    adapted = {name for name, module in plain.layers[0].named_modules() if type(module).__name__ == "LoRALinear"}
    ours_model, _ = load(str(tiny_hf_model))[:2]  # type: ignore[misc]
    assert set(lora_keys(ours_model, ours.target_modules)) == adapted
    assert len(adapted) == 7


def test_peft_defaults_adapt_every_linear_projection_of_every_block(tiny_hf_model: Path) -> None:
    pytest.importorskip("peft")
    from backends.finetune_peft import load_model

    config = default_config("peft")
    model, _ = load_model(str(tiny_hf_model), config, "cpu")
    adapted = {name for name, module in model.named_modules() if hasattr(module, "lora_A") and module.lora_A}
    blocks = model.base_model.model.model.layers
    assert len(adapted) == len(blocks) * len(ALL_LINEAR)
    for name in ALL_LINEAR:
        assert sum(a.endswith(name) for a in adapted) == len(blocks)
    first = next(m for n, m in model.named_modules() if n in adapted)
    assert first.scaling["default"] == config.alpha / config.rank


def test_a_diverged_loss_stops_the_run_with_advice() -> None:
    from backends.finetune_common import check_loss
    from core.errors import FinetuneError

    assert check_loss(2.5, 1, 1e-4) == 2.5
    with pytest.raises(FinetuneError, match=r"diverged at step 7.*it was 0\.01; try a tenth"):
        check_loss(float("nan"), 7, 1e-2)
    with pytest.raises(FinetuneError):
        check_loss(float("inf"), 1, 1e-2)
