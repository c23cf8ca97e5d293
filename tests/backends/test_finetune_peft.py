"""PEFT LoRA jobs end to end: a real child process trains a tiny generated llama on a memorisable dataset."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.errors import FinetuneError
from core.finetune.types import FinetuneConfig, TrainingProgress, TrainingStarted, latest_checkpoint
from core.jobs import JobState
from tests.support.fixtures_finetune import FACTS

GREEDY = GenerationParams(max_tokens=6, temperature=0.0, top_k=1, repeat_penalty=1.0, min_p=0.0, seed=0)
FAST = FinetuneConfig(
    rank=8,
    alpha=16,
    learning_rate=1e-2,
    target_modules=("q_proj", "v_proj", "o_proj", "up_proj", "down_proj"),
    iters=30,
    batch_size=4,
    eval_every=10,
    checkpoint_every=10,
    schedule="constant",  # type: ignore[arg-type]
    warmup_steps=0,
)


def greedy_answer(model_dir: Path, question: str, adapter: Path | None = None) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class Watcher:
    """Collects a run's events and lets the test wait for a condition on them (no sleeps)."""

    def __init__(self, service: object) -> None:
        self.events: list[object] = []
        self._cond = threading.Condition()
        service.events.connect(self._on)  # type: ignore[attr-defined]

    def _on(self, job_id: str, event: object) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 120.0) -> object:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out; last events: {self.events[-3:]}"
                self._cond.wait(remaining)

    def steps(self) -> list[int]:
        return [e.step for e in self.events if isinstance(e, TrainingProgress)]


@pytest.mark.slow
def test_peft_job_learns_the_facts_and_changes_the_answers(ft_app, tiny_hf_model: Path, facts_dataset: Path) -> None:
    from core.models.types import ImportMode

    library = ft_app.library
    base_entry = library.import_paths([tiny_hf_model], ImportMode.LINK).imported[0]
    service = ft_app.finetune
    job_id = service.start(tiny_hf_model, facts_dataset, FAST, backend="peft")
    job = service.wait(job_id, timeout=240)
    assert job.state == JobState.SUCCEEDED, job.error
    # the adapter is in the library, linked to its base model
    [adapter_entry] = library.adapters_of(base_entry.id)
    assert job.result is not None and job.result["library_id"] == adapter_entry.id
    assert adapter_entry.root == Path(job.result["adapter_path"])
    run = service.run(job_id)
    assert [p.step for p in run.train_curve] == list(range(1, 31))
    assert [p.step for p in run.val_curve] == [0, 10, 20, 30]
    first, last = run.val_curve[0].loss, run.val_curve[-1].loss
    assert last < first * 0.4, (first, last)
    assert run.config == FAST and run.backend == "peft"
    adapter = run.adapter_path
    assert adapter is not None and (adapter / "adapter_model.safetensors").is_file()
    assert any("Training" in line for line in service.log(job_id))
    question, answer = FACTS[0]
    assert answer not in greedy_answer(tiny_hf_model, question)
    assert greedy_answer(tiny_hf_model, question, adapter).strip().startswith(answer)

    # "Chat with it" in llama.cpp: export the base as GGUF and the adapter as a GGUF LoRA, as export jobs
    base_job = service.export(job_id, "gguf-base")
    lora_job = service.export(job_id, "gguf-lora")
    base_gguf = service.wait(base_job, timeout=120).result["path"]  # type: ignore[index]
    lora_export = service.wait(lora_job, timeout=120)
    assert lora_export.state == JobState.SUCCEEDED, lora_export.error
    lora_gguf = lora_export.result["path"]  # type: ignore[index]
    assert library.get(lora_export.result["library_id"]).base_model_id == base_entry.id  # type: ignore[index]
    host = ft_app.new_engine_host("tuned-gguf")
    options = LoadOptions(context_length=256, seed=0, lora_path=lora_gguf)
    host.load_blocking(ModelSpec("llama", base_gguf, options))
    reply = host.generate_blocking([ChatMessage("user", question)], GREEDY).text
    assert reply.startswith(answer), reply
    # and a merged model that loads without PEFT
    merged_job = service.export(job_id, "merged")
    merged = Path(service.wait(merged_job, timeout=120).result["path"])  # type: ignore[index]
    assert (merged / "model.safetensors").is_file()
    assert greedy_answer(merged, question).strip().startswith(answer)
    with pytest.raises(FinetuneError, match="already exists"):
        service.export(job_id, "merged")


@pytest.mark.slow
def test_crash_cancel_and_resume_continue_from_checkpoints(ft_app, tiny_hf_model: Path, facts_dataset: Path) -> None:
    service = ft_app.finetune
    watcher = Watcher(service)
    config = FAST.with_(iters=24, checkpoint_every=4, eval_every=100)
    job_id = service.start(tiny_hf_model, facts_dataset, config, backend="peft")

    # 1. the child dies (as an out-of-memory kill would): the job fails with a resumable message
    started = watcher.wait_for(lambda e: isinstance(e, TrainingStarted))
    watcher.wait_for(lambda e: isinstance(e, TrainingProgress) and e.step >= 6)
    os.kill(started.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    job = service.wait(job_id, timeout=60)
    assert job.state == JobState.FAILED
    assert "stopped unexpectedly" in (job.error or "") and "Resume to continue from step" in (job.error or "")
    checkpoint = latest_checkpoint(service.run(job_id).run_dir)
    assert checkpoint is not None and checkpoint.step >= 4

    # 2. resume: training continues right after the checkpoint; then a cancel stops it within seconds
    watcher.events.clear()
    service.resume(job_id)
    resumed = watcher.wait_for(lambda e: isinstance(e, TrainingProgress))
    assert resumed.step == checkpoint.step + 1  # type: ignore[attr-defined]
    watcher.wait_for(lambda e: isinstance(e, TrainingProgress) and e.step >= checkpoint.step + 3)
    asked = time.monotonic()
    service.cancel(job_id)
    job = service.wait(job_id, timeout=30)
    assert job.state == JobState.CANCELLED
    assert time.monotonic() - asked < 10
    stopped_at = max(watcher.steps())
    after_cancel = latest_checkpoint(service.run(job_id).run_dir)
    assert after_cancel is not None and after_cancel.step == stopped_at  # saved on the way out

    # 3. resume again and finish: one curve point per step, no gaps, no duplicates
    watcher.events.clear()
    service.resume(job_id)
    job = service.wait(job_id, timeout=120)
    assert job.state == JobState.SUCCEEDED, job.error
    assert min(watcher.steps()) == stopped_at + 1
    assert [p.step for p in service.run(job_id).train_curve] == list(range(1, 25))
    # the history: cheap by default (last point only), full curves on request
    [listed] = service.runs()
    assert listed.job.id == job_id and [p.step for p in listed.train_curve] == [24] and listed.val_curve == ()
    assert len(service.runs(curves=True)[0].train_curve) == 24


def test_bad_settings_and_inputs_are_refused_before_a_job_starts(
    ft_app, tiny_hf_model: Path, facts_dataset: Path, tmp_path: Path
) -> None:
    service = ft_app.finetune
    with pytest.raises(FinetuneError, match="rank must be"):
        service.start(tiny_hf_model, facts_dataset, FAST.with_(rank=0))
    with pytest.raises(FinetuneError, match=r"no config\.json"):
        service.start(tmp_path, facts_dataset, FAST)
    with pytest.raises(FinetuneError, match="batch size is 16"):
        service.start(tiny_hf_model, facts_dataset, FAST.with_(batch_size=16))
    mlx_quantized = tmp_path / "mlx-4bit"
    mlx_quantized.mkdir()
    (mlx_quantized / "config.json").write_text('{"model_type": "llama", "quantization": {"bits": 4}}')
    with pytest.raises(FinetuneError, match="quantized for MLX"):
        service.start(mlx_quantized, facts_dataset, FAST, backend="peft")
    assert service.runs() == []


@pytest.mark.slow
def test_qlora_without_cuda_fails_with_a_clear_message(ft_app, tiny_hf_model: Path, facts_dataset: Path) -> None:
    service = ft_app.finetune
    job_id = service.start(tiny_hf_model, facts_dataset, FAST.with_(quantize_4bit=True), backend="peft")
    job = service.wait(job_id, timeout=120)
    assert job.state == JobState.FAILED
    assert "QLoRA" in (job.error or "") and "CUDA" in (job.error or "")


@pytest.mark.slow
def test_closing_the_app_pauses_a_run_and_a_new_session_resumes_it(
    data_dir: Path, tiny_hf_model: Path, facts_dataset: Path
) -> None:
    from backends.finetune_worker import run as finetune_entry
    from backends.worker import serve
    from core.app import AppContext
    from core.paths import AppPaths

    def open_app() -> AppContext:
        return AppContext.create(AppPaths.under(data_dir), worker_entry=serve, finetune_entry=finetune_entry)

    first = open_app()
    watcher = Watcher(first.finetune)
    job_id = first.finetune.start(tiny_hf_model, facts_dataset, FAST.with_(iters=16, checkpoint_every=100))
    watcher.wait_for(lambda e: isinstance(e, TrainingProgress) and e.step >= 3)
    first.close()  # what quitting Hangar does: running jobs are paused, keeping a checkpoint
    stopped_at = max(watcher.steps())

    second = open_app()
    try:
        run = second.finetune.run(job_id)
        assert run.job.state == JobState.PAUSED
        assert [p.step for p in run.train_curve] == list(range(1, stopped_at + 1))
        assert run.config == FAST.with_(iters=16, checkpoint_every=100)
        second.finetune.resume(job_id)
        job = second.finetune.wait(job_id, timeout=120)
        assert job.state == JobState.SUCCEEDED, job.error
        assert [p.step for p in second.finetune.run(job_id).train_curve] == list(range(1, 17))
    finally:
        second.close()
