"""Does a Hangar fine-tune learn as well as the plain trainer? Validation loss after N steps, on the same generated
model and data, for Hangar's backends and the tools they wrap, each with its own defaults and with the same
settings. Target: Hangar's loss ≤ 1.15 × the plain trainer's in every comparison.

    python bench/finetune_loss.py [--steps 100] [--backend mlx|peft|both] [--json]

- MLX, plain: ``mlx_lm.lora.run`` (what ``mlx_lm lora --train`` runs) with its ``CONFIG_DEFAULTS``.
  Hangar: ``backends.finetune_mlx.train`` with ``default_config("mlx")``. Same settings: rank 8, scale 20,
  lr 1e-4 constant, all seven projections, for both.
- PEFT, plain: ``transformers.Trainer`` on a ``peft.get_peft_model`` model, both with their library defaults
  (``LoraConfig``: r 8, alpha 8, q/v; ``TrainingArguments``: lr 5e-5, linear decay, no warm-up). Hangar:
  ``backends.finetune_peft.train`` with ``default_config("peft")``. Same settings: Hangar's PEFT defaults given
  to the plain Trainer too.

Every run sees the same rows in its own trainer's order, batch 4, seed 0, and the loss is the token-weighted mean
over the whole validation file (mlx-lm's ``evaluate``, Hangar's PEFT ``evaluate``) — the same measure on both sides
of a comparison. The model is the 2-layer, 64-wide llama of ``core.devkit.modelgen_hf``; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.finetune.presets import default_config  # noqa: E402
from core.finetune.types import (  # noqa: E402
    ALL_LINEAR,
    FinetuneBackend,
    FinetuneConfig,
    FinetuneRequest,
    LrSchedule,
    ValidationReport,
)

TARGET = 1.15
BATCH = 4
SEED = 0
_SUBJECTS = ("the model", "the user", "a local chat", "the assistant", "this python code", "the json")
_VERBS = ("can write", "will find", "did make", "could call", "has made", "would look for")
_OBJECTS = ("a fast token", "the first number", "some memory", "two people", "long water", "the world")


def make_rows(n: int, seed: int = SEED) -> list[dict[str, str]]:
    """Short sentences from the tiny tokenizer's own vocabulary, with a structure there is to learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        other = rng.choice(_SUBJECTS)
        rows.append({"text": f"user: hello. assistant: {subject} {verb} {obj}, and {other} is {i % 7}."})
    return rows


def make_inputs(folder: Path) -> tuple[Path, Path]:
    from core.devkit.modelgen_hf import write_tiny_hf_model

    model = write_tiny_hf_model(folder / "model")
    rows = make_rows(67)
    data = folder / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:59]))
    (data / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[59:]))
    return model, data


@dataclass(frozen=True)
class Result:
    backend: str
    comparison: str  # "defaults" or "same settings"
    hangar_start: float
    hangar_end: float
    plain_start: float
    plain_end: float
    seconds: float

    @property
    def ratio(self) -> float:
        return self.hangar_end / self.plain_end


class _Reporter:
    def __init__(self) -> None:
        self.val: dict[int, float] = {}

    def emit(self, event: object) -> None:
        if isinstance(event, ValidationReport):
            self.val[event.step] = event.val_loss

    def should_stop(self) -> bool:
        return False


def hangar_run(backend: str, model: Path, data: Path, config: FinetuneConfig, steps: int, root: Path) -> list[float]:
    """(first, last) validation loss of a Hangar run, trained by the backend Hangar's child runs."""
    config = config.with_(iters=steps, eval_every=steps, checkpoint_every=10 * steps, val_batches=-1, seed=SEED)
    run_dir = Path(tempfile.mkdtemp(dir=root))
    request = FinetuneRequest(FinetuneBackend(backend), str(model), str(data), str(run_dir), config.validate(), steps)
    reporter = _Reporter()
    if backend == "mlx":
        from backends.finetune_mlx import train
    else:
        from backends.finetune_peft import train
    train(request, reporter)
    return [reporter.val[min(reporter.val)], reporter.val[max(reporter.val)]]


# -- the plain trainers ---------------------------------------------------------------------------------------
def mlx_plain(model: Path, data: Path, steps: int, root: Path, **overrides: Any) -> list[float]:
    """``mlx_lm lora --train`` through its Python API: CONFIG_DEFAULTS plus ``overrides``."""
    import numpy as np
    from mlx_lm import lora
    from mlx_lm.tuner.callbacks import TrainingCallback

    losses: dict[int, float] = {}

    class Callback(TrainingCallback):
        def on_val_loss_report(self, info: dict[str, Any]) -> None:
            losses[int(info["iteration"])] = float(info["val_loss"])

    args = dict(lora.CONFIG_DEFAULTS)
    args.update(
        model=str(model),
        train=True,
        data=str(data),
        iters=steps,
        steps_per_eval=steps,
        steps_per_report=steps,
        save_every=10 * steps,
        val_batches=-1,
        adapter_path=tempfile.mkdtemp(dir=root),
        seed=SEED,
        batch_size=BATCH,
        num_layers=-1,  # mlx-lm's 16 exceeds this model's 2 blocks (it refuses); -1 is every block, as 16 would be
    )
    args.update(overrides)
    namespace = types.SimpleNamespace(**args)
    # lora.run's own steps (it replaces a passed callback with its reporting ones, so they are spelled out here)
    np.random.seed(SEED)
    model_, tokenizer = lora.load(str(model))[:2]
    train_set, valid_set, _ = lora.load_dataset(namespace, tokenizer)
    lora.train_model(namespace, model_, train_set, valid_set, Callback())
    return [losses[min(losses)], losses[max(losses)]]


def peft_plain(model_dir: Path, data: Path, steps: int, root: Path, config: FinetuneConfig | None) -> list[float]:
    """``transformers.Trainer`` + PEFT. ``config`` None: both libraries' own defaults."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from backends.finetune_common import encode_record, read_records
    from backends.finetune_peft import evaluate

    set_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if config is None:
        lora = LoraConfig(task_type="CAUSAL_LM")  # r 8, alpha 8, the architecture's default targets (q, v)
        training: dict[str, Any] = {}
    else:
        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
        )
        training = {
            "learning_rate": config.learning_rate,
            "lr_scheduler_type": str(config.schedule),
            "warmup_steps": config.warmup_steps,
            "weight_decay": 0.0,
        }
    model = get_peft_model(model, lora)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_set = [encode_record(tokenizer, r, False)[0] for r in read_records(data / "train.jsonl")]
    valid = [encode_record(tokenizer, r, False) for r in read_records(data / "valid.jsonl")]

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = ids[i, :n]
            attention[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attention}

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(dir=root),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        seed=SEED,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        **training,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=[{"input_ids": t} for t in train_set], data_collator=collate
    )
    measure = types.SimpleNamespace(val_batches=-1, batch_size=BATCH, max_length=10**6)
    device = str(next(model.parameters()).device)
    start = evaluate(model, valid, measure, pad_id, device)
    trainer.train()
    return [start, evaluate(model, valid, measure, pad_id, device)]


# -- the comparisons ------------------------------------------------------------------------------------------
SAME_MLX = FinetuneConfig(
    rank=8, alpha=160.0, target_modules=ALL_LINEAR, learning_rate=1e-4, schedule=LrSchedule.CONSTANT, warmup_steps=0
)


def compare(backend: str, steps: int, model: Path, data: Path, root: Path) -> list[Result]:
    results = []
    if backend == "mlx":
        cases: list[tuple[str, FinetuneConfig, Any]] = [
            ("defaults", default_config("mlx"), lambda: mlx_plain(model, data, steps, root)),
            (
                "same settings",
                SAME_MLX,
                lambda: mlx_plain(
                    model,
                    data,
                    steps,
                    root,
                    learning_rate=SAME_MLX.learning_rate,
                    lora_parameters={"rank": SAME_MLX.rank, "scale": SAME_MLX.scale, "dropout": 0.0},
                ),
            ),
        ]
    else:
        ours = default_config("peft")
        cases = [
            ("defaults", ours, lambda: peft_plain(model, data, steps, root, None)),
            ("same settings", ours, lambda: peft_plain(model, data, steps, root, ours)),
        ]
    for comparison, config, plain in cases:
        began = time.perf_counter()
        hangar = hangar_run(backend, model, data, config, steps, root)
        baseline = plain()
        results.append(Result(backend, comparison, *hangar, *baseline, seconds=round(time.perf_counter() - began, 1)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--backend", choices=["mlx", "peft", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ["mlx", "peft"] if args.backend == "both" else [args.backend]
    results: list[Result] = []
    # The trainers' own progress output goes to stderr: stdout carries the table (or the JSON) alone.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        root = Path(tmp)
        model, data = make_inputs(root)
        for backend in backends:
            results += compare(backend, args.steps, model, data, root)
    if args.json:
        print(json.dumps([{**r.__dict__, "ratio": round(r.ratio, 3)} for r in results]))
    else:
        print(f"validation loss after {args.steps} steps (59 train rows, 8 validation rows, batch {BATCH})")
        print(f"{'backend':<8}{'settings':<15}{'Hangar':>16}{'plain trainer':>18}{'ratio':>8}  verdict")
        for r in results:
            verdict = "ok" if r.ratio <= TARGET else f"over {TARGET}"
            print(
                f"{r.backend:<8}{r.comparison:<15}{r.hangar_start:>7.2f} → {r.hangar_end:<6.2f}"
                f"{r.plain_start:>9.2f} → {r.plain_end:<6.2f}{r.ratio:>8.2f}  {verdict}"
            )
    return 0 if all(r.ratio <= TARGET for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
