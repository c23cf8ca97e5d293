"""Fine-tune defaults per backend, the newcomer presets, the command line's settings and the typed job params."""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import FinetuneError
from core.finetune.presets import MLX_SCALE, PRESETS, Preset, default_config, preset_config
from core.finetune.types import (
    ALL_LINEAR,
    FinetuneBackend,
    FinetuneConfig,
    LrSchedule,
    TrainJobParams,
    learning_rate_at,
)
from ui.cli import finetune_cmd


def test_peft_defaults_are_what_peft_and_unsloth_users_start_from() -> None:
    config = default_config("peft")
    assert config == FinetuneConfig()
    assert config.rank == 16 and 16 <= config.alpha <= 32 and config.learning_rate == 2e-4
    assert set(config.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert config.num_layers == -1
    assert config.schedule in (LrSchedule.LINEAR, LrSchedule.COSINE) and config.warmup_steps > 0
    # warm-up ramps up, then the rate decays, and it is the full rate right after the warm-up
    rates = [learning_rate_at(config, step, 100) for step in range(100)]
    assert rates[0] < rates[config.warmup_steps - 1] == config.learning_rate
    after = rates[config.warmup_steps - 1 :]
    assert all(a >= b for a, b in itertools.pairwise(after)) and after[-1] < 0.05 * config.learning_rate


def test_mlx_defaults_are_mlx_lms() -> None:
    config = default_config(FinetuneBackend.MLX)
    assert (config.rank, config.scale, config.dropout) == (8, 20.0, 0.0)  # mlx-lm's lora_parameters
    assert config.learning_rate == 1e-5 and config.batch_size == 4
    assert config.schedule == LrSchedule.CONSTANT and config.warmup_steps == 0  # mlx-lm: no lr_schedule
    assert config.target_modules == ALL_LINEAR and config.num_layers == -1
    assert all(learning_rate_at(config, step, 50) == 1e-5 for step in range(50))


@pytest.mark.parametrize("backend", ["mlx", "peft"])
def test_presets_grow_from_quick_to_thorough_and_keep_the_backends_scale_and_rate(backend: str) -> None:
    configs = [preset_config(p, backend) for p in Preset]
    base = default_config(backend)
    assert [c.rank for c in configs] == sorted(c.rank for c in configs) and configs[0].rank < configs[-1].rank
    assert [c.epochs for c in configs] == sorted(c.epochs or 0 for c in configs)
    for config in configs:
        assert config.scale == pytest.approx(base.scale)
        assert config.learning_rate == base.learning_rate and config.validate() is config
    assert configs[0].total_steps(train_rows=40) == 10  # one pass over 40 rows in batches of 4
    assert all(info.title and info.description for info in PRESETS.values())
    with pytest.raises(ValueError):
        preset_config("extreme", backend)


def cli_config(*argv: str) -> FinetuneConfig:
    parser = argparse.ArgumentParser()
    finetune_cmd.add_arguments(parser)
    return finetune_cmd.config_from_args(parser.parse_args(list(argv)))


def test_the_command_line_starts_from_the_backends_defaults_and_applies_only_what_was_given() -> None:
    assert cli_config() == default_config("peft")
    assert cli_config("--backend", "mlx") == default_config("mlx")
    # a new rank keeps the backend's LoRA scale unless alpha is given too
    assert cli_config("--backend", "mlx", "--rank", "4").alpha == 4 * MLX_SCALE
    assert cli_config("--rank", "4", "--alpha", "4").scale == 1.0
    quick = cli_config("--backend", "mlx", "--preset", "quick")
    assert quick == preset_config("quick", "mlx") and quick.epochs == 1.0
    # an explicit step count wins over the preset's passes
    assert cli_config("--preset", "thorough", "--iters", "7").total_steps(train_rows=1000) == 7
    custom = cli_config("--schedule", "cosine", "--warmup", "0", "--target-modules", "q_proj, v_proj")
    assert (custom.schedule, custom.warmup_steps, custom.target_modules) == (LrSchedule.COSINE, 0, ("q_proj", "v_proj"))
    with pytest.raises(FinetuneError, match="warm-up"):
        cli_config("--warmup", "-1")


def test_train_job_params_round_trip_through_the_jobs_json() -> None:
    params = TrainJobParams(FinetuneBackend.MLX, "/m", "/d.jsonl", "/runs/a", preset_config("quick", "mlx"), 15)
    data = params.to_dict()
    assert data["backend"] == "mlx" and data["config"]["schedule"] == "constant"
    assert TrainJobParams.from_dict(data) == params
    with pytest.raises(FinetuneError, match="cannot be read"):
        TrainJobParams.from_dict({**data, "backend": "tensorflow"})


def test_export_does_not_import_the_service() -> None:
    """Issue 11: core.finetune.export and core.finetune.service imported each other."""
    code = "import sys, core.finetune.export; print('core.finetune.service' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "False"
