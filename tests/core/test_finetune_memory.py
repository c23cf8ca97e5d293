"""The training-memory figure shown before a fine-tune, and the advice when it does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import FinetuneError
from core.finetune.memory import plan_training_memory
from core.finetune.types import FinetuneConfig
from core.hardware import Hardware


def machine(available: int) -> Hardware:
    return Hardware(
        os="linux",
        machine="x86_64",
        cpu_name="test cpu",
        cpu_cores=2,
        cpu_threads=2,
        cpu_family="none",
        ram_total_bytes=available * 2,
        ram_available_bytes=available,
        ram_bandwidth_gbs=None,
    )


def test_tiny_model_fits_and_gets_no_advice(tiny_hf_model: Path) -> None:
    plan = plan_training_memory(tiny_hf_model, FinetuneConfig(), "peft", machine(16 * 1024**3))
    assert plan.fits and plan.advice == ()
    assert plan.estimate.trainable_parameters > 0
    assert "available" in plan.summary()


def test_a_tight_budget_gets_ranked_advice(tiny_hf_model: Path) -> None:
    config = FinetuneConfig(batch_size=8, max_length=4096)
    full = plan_training_memory(tiny_hf_model, config, "peft")
    plan = plan_training_memory(tiny_hf_model, config, "peft", machine(full.estimate.total_bytes // 2))
    assert not plan.fits and "only" in plan.summary()
    changes = [a.change for a in plan.advice]
    assert any("batch size 1" in c for c in changes) and any("maximum length" in c for c in changes)
    assert any("gradient checkpointing" in c for c in changes) and any("QLoRA" in c for c in changes)
    totals = [a.total_bytes for a in plan.advice]
    assert totals == sorted(totals) and all(t < plan.estimate.total_bytes for t in totals)


def test_a_folder_without_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="config"):
        plan_training_memory(tmp_path, FinetuneConfig())
