"""Training speed through Hangar vs calling the library directly, on the same generated model and data, in the
same run (the machine is shared and noisy: only the ratio means something). Target: ratio >= 0.95.

    python bench/finetune_speed.py [--backend peft|mlx|both] [--steps N] [--rounds R] [--embd 256 --layers 4]

Hangar: a real fine-tune job (``FinetuneService``: child process, events, SQLite curve, checkpoints off the
measured window). Baseline: PEFT — a plain loop (model, ``get_peft_model``, AdamW, forward/backward/step) in
this process; MLX — ``mlx_lm.tuner.trainer.train`` with the same LoRA layers and optimizer. Steps/s counts the
steps after a warm-up (first compile, first allocations), timed where each side reports a step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.finetune.types import FinetuneConfig, TrainingProgress  # noqa: E402

WARMUP = 5


def make_inputs(folder: Path, embd: int, layers: int) -> tuple[Path, Path]:
    from core.devkit.modelgen import TinyModelConfig
    from core.devkit.modelgen_hf import write_tiny_hf_model

    model = write_tiny_hf_model(
        folder / "model", TinyModelConfig(n_embd=embd, n_layer=layers, n_head=8, n_head_kv=4, n_ff=embd * 3)
    )
    rows = []
    for i in range(64):
        question = f"Question number {i}: what is the code word for item {i * 7 % 13}?"
        rows.append(
            {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": f"w{i}" * 8}]}
        )
    data = folder / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    return model, data


def rate(durations: dict[int, float], steps: int) -> float:
    """Steps per second from per-step wall times (median: other processes on a shared machine cause spikes)."""
    # The warm-up steps compile and allocate; the last step is left out because Hangar evaluates the
    # validation set there (the baselines have none).
    window = [durations[s] for s in range(WARMUP + 1, steps) if s in durations]
    return 1.0 / statistics.median(window)


def hangar_rate(backend: str, model: Path, data: Path, config: FinetuneConfig, root: Path) -> float:
    from backends.finetune_worker import run as entry
    from core.finetune.service import FinetuneService
    from core.jobs import JobManager
    from core.store import Store

    store = Store(root / f"bench-{backend}-{time.monotonic_ns()}.sqlite3")
    jobs = JobManager(store)
    service = FinetuneService(store, jobs, root / "adapters", entry)
    times: dict[int, float] = {}

    def on_event(_job: str, event: object) -> None:
        if isinstance(event, TrainingProgress):
            times[event.step] = event.seconds_per_step  # measured in the training process, loop included

    service.events.connect(on_event)
    job_id = service.start(model, data, config, backend=backend)
    job = service.wait(job_id, timeout=1800)
    jobs.shutdown()
    store.close()
    if job.state != "succeeded":
        raise SystemExit(f"Hangar run failed: {job.error}")
    return rate(times, config.iters)


def peft_direct_rate(model_dir: Path, data: Path, config: FinetuneConfig) -> float:
    """A plain PEFT loop on the same tokens and batches (Hangar's helpers only prepare the data)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.finetune_common import encode_record, read_records
    from backends.finetune_peft import batch_indices, make_batch

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=config.rank, lora_alpha=config.alpha, target_modules=list(config.target_modules), task_type="CAUSAL_LM"
        ),
    )
    model.train()
    encoded = [encode_record(tokenizer, r, True) for r in read_records(data / "train.jsonl")]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    times: dict[int, float] = {}
    last = time.perf_counter()
    for step in range(config.iters):
        ids, mask = make_batch(
            encoded,
            batch_indices(len(encoded), config.batch_size, config.seed, step),
            config.max_length,
            tokenizer.pad_token_id,
        )
        logits = model(input_ids=ids[:, :-1]).logits
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
        )
        loss = (losses.reshape(mask.shape) * mask).sum() / mask.sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())  # what a report reads
        now = time.perf_counter()
        times[step + 1], last = now - last, now
    return rate(times, config.iters)


def mlx_direct_rate(model_dir: Path, data: Path, config: FinetuneConfig) -> float:
    """mlx-lm's own trainer, as its ``mlx_lm.lora`` command drives it (reports every step for timing)."""
    import types

    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    from backends.finetune_common import read_records
    from backends.finetune_mlx import lora_keys

    mx.random.seed(config.seed)
    model, tokenizer = load(str(model_dir))[:2]
    model.freeze()
    linear_to_lora_layers(
        model,
        len(model.layers),
        {"rank": config.rank, "scale": config.scale, "dropout": 0.0, "keys": lora_keys(model, config.target_modules)},
    )
    options = types.SimpleNamespace(mask_prompt=True)
    train_set = CacheDataset(create_dataset(read_records(data / "train.jsonl"), tokenizer, options))
    times: dict[int, float] = {}
    last = [time.perf_counter()]

    class Timer(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            now = time.perf_counter()
            times[int(info["iteration"])], last[0] = now - last[0], now

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArgs(
            batch_size=config.batch_size,
            iters=config.iters,
            steps_per_report=1,
            steps_per_eval=10**9,
            steps_per_save=10**9,
            max_seq_length=config.max_length,
            adapter_file=str(Path(tmp) / "adapters.safetensors"),
        )
        optimizer = optim.Adam(learning_rate=config.learning_rate)  # as Hangar and `mlx_lm lora` build it
        train(model, optimizer, train_set, None, args=args, training_callback=Timer())
    return rate(times, config.iters)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["peft", "mlx", "both"], default="both")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="alternate Hangar and direct this many times")
    parser.add_argument("--embd", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = FinetuneConfig(
        rank=8,
        alpha=16,
        target_modules=("q_proj", "v_proj"),
        learning_rate=1e-4,
        schedule="constant",  # type: ignore[arg-type]
        warmup_steps=0,
        iters=args.steps,
        batch_size=4,
        max_length=512,
        eval_every=10**6,  # no evaluation inside the measured window (the baselines do none)
        checkpoint_every=10**6,
        valid_fraction=0.0,
    )
    backends = ["peft", "mlx"] if args.backend == "both" else [args.backend]
    results = {}
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        root = Path(tmp)
        model, data = make_inputs(root, args.embd, args.layers)
        for backend in backends:
            direct_fn = peft_direct_rate if backend == "peft" else mlx_direct_rate
            hangar, direct = [], []
            for _ in range(args.rounds):
                direct.append(direct_fn(model, data, config))
                hangar.append(hangar_rate(backend, model, data, config, root))
            best_h, best_d = max(hangar), max(direct)
            results[backend] = {
                "hangar_steps_per_s": round(best_h, 2),
                "direct_steps_per_s": round(best_d, 2),
                "ratio": round(best_h / best_d, 3),
                "all_hangar": [round(x, 2) for x in hangar],
                "all_direct": [round(x, 2) for x in direct],
            }
            print(f"{backend}: Hangar {best_h:.2f} steps/s, direct {best_d:.2f} steps/s, ratio {best_h / best_d:.3f}")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
