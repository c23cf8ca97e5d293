"""LoRA training with mlx-lm's own trainer (Apple Silicon; the Linux CPU build of MLX in tests).

mlx-lm does the work (``linear_to_lora_layers``, ``tuner.trainer.train``); Hangar adds what an app needs through
a ``TrainingCallback``: progress events, a stop check every step, checkpoints that hold the optimizer state (so
the learning-rate schedule continues on resume), and an adapter folder that ``mlx_lm.load(adapter_path=...)``
reads. QLoRA: a quantized MLX model trains as is; ``quantize_4bit`` quantizes a full-precision base in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import types
from pathlib import Path
from typing import Any

from backends.finetune_common import check_loss, length_stats, load_split
from core.errors import FinetuneError
from core.finetune.types import (
    ADAPTER,
    CheckpointSaved,
    FinetuneConfig,
    FinetuneRequest,
    LrSchedule,
    TrainingFinished,
    TrainingLog,
    TrainingProgress,
    TrainingStarted,
    ValidationReport,
    checkpoint_dir,
    read_checkpoint_step,
    write_checkpoint_state,
)

KEEP_CHECKPOINTS = 3
ADAPTER_WEIGHTS = "adapters.safetensors"
OPTIMIZER_STATE = "optimizer.safetensors"


class _Stopped(Exception):
    """Raised from the callback to leave mlx-lm's training loop between steps."""


def lora_keys(model: Any, target_modules: tuple[str, ...]) -> list[str]:
    """mlx-lm's layer-relative keys (``self_attn.q_proj``) for Hugging Face module names (``q_proj``)."""
    names = [name for name, _ in model.layers[0].named_modules()]
    keys = [n for n in names if n and n.rsplit(".", 1)[-1] in target_modules]
    if not keys:
        raise FinetuneError(
            f"This model has none of the target modules {', '.join(target_modules)}.",
            hint="Choose other target modules (for llama-style models: q_proj, k_proj, v_proj, o_proj).",
        )
    return keys


def schedule(config: FinetuneConfig, total_steps: int) -> Any:
    """The learning-rate schedule as an MLX function of the optimizer's step (same shape as PEFT's)."""
    import mlx.optimizers as optim

    decay_steps = max(1, total_steps - config.warmup_steps)
    if config.schedule == LrSchedule.COSINE:
        main = optim.cosine_decay(config.learning_rate, decay_steps, 0.0)
    elif config.schedule == LrSchedule.LINEAR:
        main = optim.linear_schedule(config.learning_rate, 0.0, decay_steps)
    else:
        return (
            config.learning_rate
            if not config.warmup_steps
            else optim.join_schedules(
                [
                    optim.linear_schedule(
                        config.learning_rate / config.warmup_steps, config.learning_rate, config.warmup_steps
                    ),
                    lambda _: config.learning_rate,
                ],
                [config.warmup_steps],
            )
        )
    if not config.warmup_steps:
        return main
    warmup = optim.linear_schedule(
        config.learning_rate / config.warmup_steps, config.learning_rate, config.warmup_steps
    )
    return optim.join_schedules([warmup, main], [config.warmup_steps])


def prepare(request: FinetuneRequest) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Load the model, add LoRA layers, build datasets. Returns (model, tokenizer, train, valid, adapter config)."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    config = request.config
    mx.random.seed(config.seed)
    model, tokenizer = load(request.base_model)[:2]
    if config.quantize_4bit and not _is_quantized(model):
        # QLoRA: 4-bit base weights, LoRA layers in full precision on top.
        nn.quantize(model, group_size=32, bits=4)
    model.freeze()
    num_layers = len(model.layers) if config.num_layers == -1 else min(config.num_layers, len(model.layers))
    lora_parameters = {
        "rank": config.rank,
        "scale": config.scale,
        "dropout": config.dropout,
        "keys": lora_keys(model, config.target_modules),
    }
    linear_to_lora_layers(model, num_layers, lora_parameters)
    train_rows, valid_rows = load_split(request)
    options = types.SimpleNamespace(
        mask_prompt=config.mask_prompt and "text" not in train_rows[0],  # mlx-lm refuses masks on text rows
        prompt_feature="prompt",
        completion_feature="completion",
        text_feature="text",
        chat_feature="messages",
    )
    if valid_rows and len(valid_rows) < config.batch_size:
        # mlx-lm evaluates whole batches; repeat a short validation set (the mean loss is unchanged).
        valid_rows = (valid_rows * config.batch_size)[: config.batch_size]
    train_set = CacheDataset(create_dataset(train_rows, tokenizer, options))  # type: ignore[arg-type]
    valid_set = (
        CacheDataset(create_dataset(valid_rows, tokenizer, options)) if valid_rows else None  # type: ignore[arg-type]
    )
    adapter_config = {
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": lora_parameters,
        "model": request.base_model,
        "base_model": request.base_model,
        "hangar": {"backend": "mlx", "config": config.to_dict()},
    }
    return model, tokenizer, train_set, valid_set, adapter_config


def _is_quantized(model: Any) -> bool:
    import mlx.nn as nn

    return any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())


def training_args(request: FinetuneRequest, iters: int, adapter_file: Path) -> Any:
    from mlx_lm.tuner.trainer import TrainingArgs

    config = request.config
    return TrainingArgs(
        batch_size=config.batch_size,
        iters=iters,
        val_batches=config.val_batches,
        steps_per_report=1,  # progress (and the stop check) every step
        steps_per_eval=config.eval_every,
        steps_per_save=10**9,  # checkpoints are ours (they add the optimizer state)
        max_seq_length=config.max_length,
        adapter_file=str(adapter_file),
        grad_checkpoint=config.grad_checkpoint,
    )


def train(request: FinetuneRequest, reporter: Any) -> None:
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.trainer import train as mlx_train

    config = request.config
    model, tokenizer, train_set, valid_set, adapter_config = prepare(request)
    total = request.total_steps
    # mlx-lm's optimizer as `mlx_lm lora` builds it: Adam with its defaults (no bias correction), so a run here
    # learns step for step as the plain tool does.
    optimizer = optim.Adam(learning_rate=schedule(config, total))
    start = 0
    if request.resume_from:
        folder = Path(request.resume_from)
        model.load_weights(str(folder / ADAPTER_WEIGHTS), strict=False)
        optimizer.init(model.trainable_parameters())
        state: Any = mx.load(str(folder / OPTIMIZER_STATE))
        optimizer.state = tree_unflatten(list(state.items()))
        start = read_checkpoint_step(folder)
    adapter = Path(request.run_dir) / ADAPTER
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2), encoding="utf-8")

    train_rows, _ = load_split(request)
    stats = length_stats(tokenizer._tokenizer, train_rows, config.max_length, config.mask_prompt)
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))  # type: ignore[str-unpack,union-attr]
    per_epoch = max(1, len(train_set) // config.batch_size)
    reporter.emit(
        TrainingStarted(
            total_steps=total,
            start_step=start,
            trainable_parameters=trainable,
            total_parameters=sum(v.size for _, v in tree_flatten(model.parameters())),  # type: ignore[str-unpack,union-attr]
            train_rows=len(train_set),
            valid_rows=len(valid_set) if valid_set is not None else 0,
            device=str(mx.default_device()),
            length_warning=stats.warning,
            max_tokens=stats.max_tokens,
            mean_tokens=stats.mean_tokens,
            pid=os.getpid(),
        )
    )

    def save_checkpoint(step: int) -> Path:
        folder = checkpoint_dir(request.run_dir, step)
        folder.mkdir(parents=True, exist_ok=True)
        mx.save_safetensors(str(folder / ADAPTER_WEIGHTS), dict(tree_flatten(model.trainable_parameters())))
        mx.save_safetensors(str(folder / OPTIMIZER_STATE), dict(tree_flatten(optimizer.state)))
        write_checkpoint_state(folder, step, backend="mlx")
        for stale in sorted(folder.parent.glob("step-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(stale, ignore_errors=True)
        reporter.emit(CheckpointSaved(step, str(folder)))
        return folder

    class Callback(TrainingCallback):
        last_report = time.perf_counter()

        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            step = start + int(info["iteration"])
            # Wall time between reports: the step, evaluation and this callback's own work (mlx-lm's
            # iterations_per_second counts the step alone).
            now = time.perf_counter()
            seconds_per_step, self.last_report = now - self.last_report, now
            loss = check_loss(float(info["train_loss"]), step, float(info["learning_rate"]))
            reporter.emit(
                TrainingProgress(
                    step=step,
                    epoch=step / per_epoch,
                    train_loss=loss,
                    learning_rate=float(info["learning_rate"]),
                    tokens_per_second=float(info["tokens_per_second"]),
                    peak_memory_bytes=int(float(info["peak_memory"]) * 1e9),
                    seconds_per_step=seconds_per_step,
                )
            )
            if step % config.checkpoint_every == 0 and step < total:
                save_checkpoint(step)
            if reporter.should_stop() and step < total:
                save_checkpoint(step)
                raise _Stopped(step)

        def on_val_loss_report(self, info: dict[str, Any]) -> None:
            reporter.emit(ValidationReport(start + int(info["iteration"]), float(info["val_loss"])))

    if start >= total:
        reporter.emit(TrainingFinished(start, str(adapter)))
        return
    model.train()
    try:
        mlx_train(
            model=model,
            optimizer=optimizer,
            train_dataset=train_set,
            val_dataset=valid_set,
            args=training_args(request, total - start, adapter / ADAPTER_WEIGHTS),
            training_callback=Callback(),
        )
    except _Stopped as stop:
        reporter.emit(TrainingFinished(int(stop.args[0]), "", stopped=True))
        return
    reporter.emit(TrainingLog(f"Adapter saved to {adapter}."))
    reporter.emit(TrainingFinished(total, str(adapter)))


def fuse_adapter(base_model: str | Path, adapter: str | Path, output: str | Path, *, dequantize: bool = False) -> Path:
    """Export base + adapter as one MLX model folder (what ``mlx_lm.fuse`` does)."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, load, save

    model, tokenizer, config = load(str(base_model), adapter_path=str(adapter), return_config=True)  # type: ignore[misc]
    fused = [(n, m.fuse(dequantize=dequantize)) for n, m in model.named_modules() if hasattr(m, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    if dequantize:
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    output = Path(output)
    save(output, str(base_model), model, tokenizer, config, donate_model=False)
    return output
