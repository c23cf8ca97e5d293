"""MLX LoRA jobs end to end: mlx-lm's trainer in a real child process, on the Linux CPU build of MLX."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.finetune.types import FinetuneConfig, TrainingProgress, TrainingStarted, latest_checkpoint
from core.jobs import JobState
from tests.backends.test_finetune_peft import FAST as PEFT_FAST
from tests.backends.test_finetune_peft import Watcher
from tests.support.fixtures_finetune import FACTS

pytest.importorskip("mlx_lm")

#: mlx-lm's Adam (no bias correction) takes larger first steps than PyTorch's AdamW: 1e-2 diverges here.
FAST = PEFT_FAST.with_(learning_rate=3e-3)


def mlx_answer(model_dir: Path, question: str, adapter: Path | None = None) -> str:
    from mlx_lm import generate, load

    model, tokenizer = load(str(model_dir), adapter_path=str(adapter) if adapter else None)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    return generate(model, tokenizer, prompt, max_tokens=6)


@pytest.mark.slow
def test_mlx_job_learns_the_facts_and_the_adapter_loads_in_mlx_lm(
    ft_app, tiny_hf_model: Path, facts_dataset: Path
) -> None:
    service = ft_app.finetune
    job_id = service.start(tiny_hf_model, facts_dataset, FAST.with_(iters=40), backend="mlx")
    job = service.wait(job_id, timeout=240)
    assert job.state == JobState.SUCCEEDED, job.error
    run = service.run(job_id)
    assert [p.step for p in run.train_curve] == list(range(1, 41))
    assert run.val_curve[0].step == 0 and len(run.val_curve) >= 4
    assert run.val_curve[-1].loss < run.val_curve[0].loss * 0.4, run.val_curve
    adapter = run.adapter_path
    assert adapter is not None and (adapter / "adapters.safetensors").is_file()
    # registered in the library (unlinked: this base folder is not in the library)

    entry = ft_app.library.get(job.result["library_id"])  # type: ignore[index]
    assert entry.root == adapter and entry.base_model_id is None
    question, answer = FACTS[0]
    assert answer not in mlx_answer(tiny_hf_model, question)
    assert mlx_answer(tiny_hf_model, question, adapter).startswith(answer)
    # the fused export (mlx_lm fuse) answers on its own
    fused_job = service.export(job_id, "merged")
    fused = service.wait(fused_job, timeout=120)
    assert fused.state == JobState.SUCCEEDED, fused.error
    assert mlx_answer(Path(fused.result["path"]), question).startswith(answer)  # type: ignore[index]


@pytest.mark.slow
def test_mlx_cancel_and_resume(ft_app, tiny_hf_model: Path, facts_dataset: Path) -> None:
    """Cancel stops mlx-lm's trainer between steps with a checkpoint; Resume continues right after it, with
    the optimizer state (so the learning-rate schedule) restored."""
    service = ft_app.finetune
    watcher = Watcher(service)
    config: FinetuneConfig = FAST.with_(iters=16, checkpoint_every=4, eval_every=8, schedule="cosine")
    job_id = service.start(tiny_hf_model, facts_dataset, config, backend="mlx")
    watcher.wait_for(lambda e: isinstance(e, TrainingProgress) and e.step >= 5)
    asked = time.monotonic()
    service.cancel(job_id)
    job = service.wait(job_id, timeout=30)
    assert job.state == JobState.CANCELLED
    assert time.monotonic() - asked < 10
    stopped_at = max(watcher.steps())
    checkpoint = latest_checkpoint(service.run(job_id).run_dir)
    assert checkpoint is not None and checkpoint.step == stopped_at
    rates = {e.step: e.learning_rate for e in watcher.events if isinstance(e, TrainingProgress)}

    watcher.events.clear()
    service.resume(job_id)
    job = service.wait(job_id, timeout=120)
    assert job.state == JobState.SUCCEEDED, job.error
    resumed = {e.step: e.learning_rate for e in watcher.events if isinstance(e, TrainingProgress)}
    assert min(resumed) == stopped_at + 1
    # the cosine schedule carries on where it was, not from the start
    assert resumed[stopped_at + 1] < rates[1]
    run = service.run(job_id)
    assert [p.step for p in run.train_curve] == list(range(1, 17))
    assert run.val_curve[-1].loss < run.val_curve[0].loss


@pytest.mark.slow
def test_mlx_qlora_trains_on_a_4bit_base(ft_app, tiny_hf_model: Path, facts_dataset: Path) -> None:
    """QLoRA: the base is quantized to 4 bits in memory and LoRA trains on top (few steps: quantized
    matmuls are slow on the CPU build)."""
    service = ft_app.finetune
    watcher = Watcher(service)
    job_id = service.start(
        tiny_hf_model, facts_dataset, FAST.with_(iters=4, eval_every=4, quantize_4bit=True), backend="mlx"
    )
    job = service.wait(job_id, timeout=180)
    assert job.state == JobState.SUCCEEDED, job.error
    started = watcher.wait_for(lambda e: isinstance(e, TrainingStarted))
    assert started.total_parameters < 151_360 / 2  # type: ignore[attr-defined]  # packed 4-bit weights
    run = service.run(job_id)
    assert run.val_curve[-1].loss < run.val_curve[0].loss
