"""LoRA training with PyTorch + PEFT (NVIDIA GPUs; also the CPU build of torch). Runs in the fine-tune child.

A plain training loop (no ``transformers.Trainer``) so that cancellation is checked between steps, checkpoints
hold exactly what a resume needs (adapter, optimizer, step), and the batch order is a pure function of the
seed and the step — a resumed run sees the same batches it would have seen.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

from backends.finetune_common import StepTimer, check_loss, encode_record, length_stats, load_split
from core.errors import FinetuneError
from core.finetune.types import (
    ADAPTER,
    CheckpointSaved,
    FinetuneRequest,
    TrainingFinished,
    TrainingLog,
    TrainingProgress,
    TrainingStarted,
    ValidationReport,
    checkpoint_dir,
    learning_rate_at,
    read_checkpoint_step,
    write_checkpoint_state,
)

logger = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 3


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def check_qlora_support(device: str) -> None:
    """QLoRA needs bitsandbytes' 4-bit kernels, which need CUDA."""
    if device != "cuda":
        raise FinetuneError(
            "QLoRA (4-bit base weights) needs an NVIDIA GPU with CUDA; this machine has none.",
            hint="Turn QLoRA off to train in full precision, or use MLX with a quantized model on a Mac.",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise FinetuneError(
            "QLoRA needs the bitsandbytes package, which is not installed.",
            hint="pip install bitsandbytes, or turn QLoRA off.",
        ) from exc


def load_model(base_model: str, config: Any, device: str) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    kwargs: dict[str, Any] = {"dtype": torch.float32 if device == "cpu" else torch.bfloat16}
    if config.quantize_4bit:
        check_qlora_support(device)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if not config.quantize_4bit:
        model.to(device)  # type: ignore[arg-type]
    if config.grad_checkpoint:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    n_layers = AutoConfig.from_pretrained(base_model).num_hidden_layers
    layers = None
    if config.num_layers != -1 and config.num_layers < n_layers:
        layers = list(range(n_layers - config.num_layers, n_layers))
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, lora)  # type: ignore[assignment]
    except ValueError as exc:
        raise FinetuneError(f"The LoRA settings do not fit this model: {exc}") from exc
    return model, tokenizer


def batch_indices(n_rows: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The rows of (0-based) step ``step``: each epoch is a seeded permutation, cut into full batches."""
    import numpy as np

    per_epoch = max(1, n_rows // batch_size)
    epoch, index = divmod(step, per_epoch)
    order = np.random.default_rng(seed + epoch).permutation(n_rows)
    return [int(i) for i in order[index * batch_size : (index + 1) * batch_size]]


def make_batch(encoded: list[tuple[list[int], int]], rows: list[int], max_length: int, pad_id: int) -> Any:
    """Token ids (B, T) and the loss mask (B, T-1) over the targets to learn."""
    import torch

    lengths = [min(len(encoded[i][0]), max_length) for i in rows]
    width = max(lengths)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width - 1), dtype=torch.float32)
    for b, i in enumerate(rows):
        tokens, offset = encoded[i]
        n = lengths[b]
        ids[b, :n] = torch.tensor(tokens[:n])
        # target t (predicting token t+1) is learned when token t+1 is past the prompt and not padding
        start = max(0, offset - 1)
        if n - 1 > start:
            mask[b, start : n - 1] = 1.0
    return ids, mask


def batch_loss(model: Any, ids: Any, mask: Any) -> tuple[Any, int]:
    import torch

    logits = model(input_ids=ids[:, :-1]).logits
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="none"
    ).reshape(mask.shape)
    tokens = mask.sum()
    return (losses * mask).sum() / tokens.clamp(min=1), int(tokens.item())


def evaluate(model: Any, encoded: list[tuple[list[int], int]], config: Any, pad_id: int, device: str) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    limit = len(encoded) if config.val_batches == -1 else config.val_batches * config.batch_size
    rows = list(range(min(len(encoded), limit)))
    with torch.no_grad():
        for start in range(0, len(rows), config.batch_size):
            ids, mask = make_batch(encoded, rows[start : start + config.batch_size], config.max_length, pad_id)
            loss, tokens = batch_loss(model, ids.to(device), mask.to(device))
            total += float(loss) * tokens
            count += tokens
    model.train()
    return total / max(1, count)


def peak_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def save_checkpoint(model: Any, optimizer: Any, request: FinetuneRequest, step: int) -> Path:
    import torch

    folder = checkpoint_dir(request.run_dir, step)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    write_checkpoint_state(folder, step, backend="peft")
    old = sorted(folder.parent.glob("step-*"))[:-KEEP_CHECKPOINTS]
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def train(request: FinetuneRequest, reporter: Any) -> None:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    config = request.config
    device = pick_device()
    torch.manual_seed(config.seed)
    model, tokenizer = load_model(request.base_model, config, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

    train_rows, valid_rows = load_split(request)
    stats = length_stats(tokenizer, train_rows, config.max_length, config.mask_prompt)
    encoded = [encode_record(tokenizer, r, config.mask_prompt) for r in train_rows]
    encoded_valid = [encode_record(tokenizer, r, config.mask_prompt) for r in valid_rows]
    if len(encoded) < config.batch_size:
        raise FinetuneError(f"Only {len(encoded)} training rows for a batch size of {config.batch_size}.")

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    start = 0
    if request.resume_from:
        folder = Path(request.resume_from)
        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors"), device=device))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device))
        start = read_checkpoint_step(folder)
    total = request.total_steps
    trainable = sum(p.numel() for p in params)
    reporter.emit(
        TrainingStarted(
            total_steps=total,
            start_step=start,
            trainable_parameters=trainable,
            total_parameters=sum(p.numel() for p in model.parameters()),
            train_rows=len(encoded),
            valid_rows=len(encoded_valid),
            device=device,
            length_warning=stats.warning,
            max_tokens=stats.max_tokens,
            mean_tokens=stats.mean_tokens,
            pid=os.getpid(),
        )
    )
    model.train()
    per_epoch = max(1, len(encoded) // config.batch_size)
    timer = StepTimer()
    if encoded_valid and start == 0:
        reporter.emit(ValidationReport(0, evaluate(model, encoded_valid, config, pad_id, device)))
    step = start
    while step < total:
        if reporter.should_stop():
            saved = save_checkpoint(model, optimizer, request, step)
            reporter.emit(CheckpointSaved(step, str(saved)))
            reporter.emit(TrainingFinished(step, "", stopped=True))
            return
        lr = learning_rate_at(config, step, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        ids, mask = make_batch(
            encoded,
            batch_indices(len(encoded), config.batch_size, config.seed, step),
            config.max_length,
            pad_id,
        )
        loss, tokens = batch_loss(model, ids.to(device), mask.to(device))
        check_loss(float(loss.detach()), step + 1, lr)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        timer.add(tokens)
        per_step, tokens_per_second = timer.take()
        reporter.emit(
            TrainingProgress(
                step=step,
                epoch=step / per_epoch,
                train_loss=float(loss.detach()),
                learning_rate=lr,
                tokens_per_second=tokens_per_second,
                peak_memory_bytes=peak_memory(device),
                seconds_per_step=per_step,
            )
        )
        if encoded_valid and (step % config.eval_every == 0 or step == total):
            reporter.emit(ValidationReport(step, evaluate(model, encoded_valid, config, pad_id, device)))
        if step % config.checkpoint_every == 0 and step < total:
            saved = save_checkpoint(model, optimizer, request, step)
            reporter.emit(CheckpointSaved(step, str(saved)))
    adapter = Path(request.run_dir) / ADAPTER
    model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    reporter.emit(TrainingLog(f"Adapter saved to {adapter}."))
    reporter.emit(TrainingFinished(step, str(adapter)))


def merge_adapter(base_model: str | Path, adapter: str | Path, output: str | Path) -> Path:
    """Export base + adapter as one merged model folder (safetensors), loadable without PEFT."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    output = Path(output)
    merged.save_pretrained(output, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_model)).save_pretrained(output)
    return output
