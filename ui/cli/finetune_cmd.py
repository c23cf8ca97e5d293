"""``hangar finetune``: train a LoRA adapter on a model folder and a dataset, printing progress as it goes.

With ``--json`` every line is one JSON object: ``{"event": "memory", ...}`` before training, ``{"step", "train_loss",
...}`` per step, ``{"step", "val_loss"}`` per evaluation, and a final ``{"adapter_path", ...}``. Ctrl+C cancels
(the last checkpoint is kept: ``--resume JOB_ID`` continues from it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import CancelledError, FinetuneError
from core.finetune.datasets import CsvColumns, load_dataset
from core.finetune.types import (
    ExportFormat,
    FinetuneBackend,
    FinetuneConfig,
    LrSchedule,
    TrainingEvent,
    TrainingFailed,
    TrainingLog,
    TrainingProgress,
    ValidationReport,
)
from core.jobs import Job, JobState
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext
    from core.finetune.service import FinetuneService

DEFAULTS = FinetuneConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="base model folder (Hugging Face / MLX safetensors)")
    parser.add_argument("--data", help="dataset: a .jsonl/.json/.csv file or a folder with train.jsonl")
    parser.add_argument("--text-column", help="CSV: the column to train on as plain text")
    parser.add_argument("--prompt-column", help="CSV: the prompt column (with --completion-column)")
    parser.add_argument("--completion-column", help="CSV: the completion column")
    parser.add_argument("--skip-bad-rows", action="store_true", help="train on the good rows of a dataset")
    parser.add_argument("--backend", choices=[b.value for b in FinetuneBackend], default="peft")
    parser.add_argument("--iters", type=int, default=DEFAULTS.iters, help="training steps")
    parser.add_argument("--epochs", type=float, help="train for this many passes instead of --iters")
    parser.add_argument("--rank", type=int, default=DEFAULTS.rank)
    parser.add_argument("--alpha", type=float, help="LoRA alpha (default: twice the rank)")
    parser.add_argument("--dropout", type=float, default=DEFAULTS.dropout)
    parser.add_argument("--target-modules", default=",".join(DEFAULTS.target_modules), help="comma-separated")
    parser.add_argument("--layers", type=int, default=DEFAULTS.num_layers, help="last N layers (-1: all)")
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    parser.add_argument("--schedule", choices=[s.value for s in LrSchedule], default=DEFAULTS.schedule.value)
    parser.add_argument("--warmup", type=int, default=0, help="warm-up steps")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--max-length", type=int, default=DEFAULTS.max_length)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--eval-every", type=int, default=DEFAULTS.eval_every)
    parser.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every)
    parser.add_argument("--qlora", action="store_true", help="4-bit base weights (CUDA with bitsandbytes, or MLX)")
    parser.add_argument("--grad-checkpoint", action="store_true", help="trade speed for activation memory")
    parser.add_argument("--resume", metavar="JOB_ID", help="continue a stopped run from its last checkpoint")
    parser.add_argument("--export", metavar="JOB_ID", help="export a finished run (see --format)")
    parser.add_argument(
        "--format",
        choices=[f.value for f in ExportFormat],
        default=ExportFormat.MERGED.value,
        help="merged: one model folder; gguf-lora: adapter for llama.cpp; gguf-base: the base as GGUF",
    )
    parser.add_argument("--output", help="where the export goes (default: inside the run's folder)")


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    return FinetuneConfig(
        rank=args.rank,
        alpha=args.alpha if args.alpha is not None else 2.0 * args.rank,
        dropout=args.dropout,
        target_modules=tuple(m.strip() for m in args.target_modules.split(",") if m.strip()),
        num_layers=args.layers,
        learning_rate=args.learning_rate,
        schedule=LrSchedule(args.schedule),
        warmup_steps=args.warmup,
        iters=args.iters,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        quantize_4bit=args.qlora,
        grad_checkpoint=args.grad_checkpoint,
    ).validate()


def run(app: AppContext, args: argparse.Namespace) -> int:
    service = app.finetune
    printer = _Printer(bool(args.json))
    disconnect = service.events.connect(printer.on_event)
    try:
        if args.export:
            return _export(app, args)
        if args.resume:
            job_id = args.resume
            service.run(job_id)  # raises NotFoundError for an unknown id
            service.resume(job_id)
        else:
            if not args.model or not args.data:
                raise FinetuneError("Give a base model (--model) and a dataset (--data), or --resume JOB_ID.")
            config = config_from_args(args)
            _print_memory(app, Path(args.model), config, args.backend, printer.as_json)
            columns = None
            if args.text_column or args.prompt_column or args.completion_column:
                columns = CsvColumns(
                    text=args.text_column, prompt=args.prompt_column, completion=args.completion_column
                )
            dataset = load_dataset(args.data, columns=columns, strict=not args.skip_bad_rows)
            job_id = service.start(args.model, dataset, config, backend=args.backend)
        printer.job_id = job_id
        try:
            job = _wait(service, job_id)
        except KeyboardInterrupt:
            service.cancel(job_id)
            service.wait(job_id, timeout=60)
            raise CancelledError(f"Cancelled; resume with: finetune --resume {job_id}") from None
    finally:
        disconnect()
    if job.state == JobState.CANCELLED:
        raise CancelledError(f"Cancelled; resume with: finetune --resume {job_id}")
    if job.state != JobState.SUCCEEDED:
        raise FinetuneError(job.error or f"The fine-tune ended as {job.state}.")
    result = job.result or {}
    if printer.as_json:
        emit_json({"job_id": job_id, "adapter_path": result.get("adapter_path"), "steps": result.get("steps")})
    else:
        print(f"Adapter saved to {result.get('adapter_path')} (job {job_id}).")
    return 0


def _export(app: AppContext, args: argparse.Namespace) -> int:
    service = app.finetune
    job_id = service.export(args.export, args.format, args.output)
    job = _wait(service, job_id)
    if job.state != JobState.SUCCEEDED:
        raise FinetuneError(job.error or f"The export ended as {job.state}.")
    path = (job.result or {}).get("path")
    if args.json:
        emit_json({"job_id": job_id, "format": args.format, "path": path})
    else:
        print(f"Exported {args.format} to {path}.")
    return 0


def _wait(service: FinetuneService, job_id: str) -> Job:
    # Join in short slices so that Ctrl+C reaches this thread promptly.
    while True:
        job = service.wait(job_id, timeout=0.5)
        if job.state.finished or job.state == JobState.PAUSED:
            return job


def _print_memory(app: AppContext, model: Path, config: FinetuneConfig, backend: str, as_json: bool) -> None:
    try:
        from core.finetune.memory import plan_training_memory

        plan = plan_training_memory(model, config, backend, app.hardware())
    except FinetuneError:
        return  # start() reports a bad model folder with its own message
    if as_json:
        emit_json(
            {
                "event": "memory",
                "total_bytes": plan.estimate.total_bytes,
                "budget_bytes": plan.estimate.budget,
                "fits": plan.fits,
                "advice": [a.change for a in plan.advice],
            }
        )
        return
    print(plan.summary())
    for advice in plan.advice[:3]:
        print(f"  try: {advice.change} (about {advice.total_bytes / 1024**3:.1f} GiB)")


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.job_id: str | None = None

    def on_event(self, job_id: str, event: TrainingEvent) -> None:
        if self.job_id is not None and job_id != self.job_id:
            return
        if isinstance(event, TrainingProgress):
            if self.as_json:
                emit_json(
                    {
                        "step": event.step,
                        "train_loss": round(event.train_loss, 6),
                        "learning_rate": event.learning_rate,
                        "tokens_per_second": round(event.tokens_per_second, 1),
                        "peak_memory_bytes": event.peak_memory_bytes,
                        "eta_seconds": round(event.eta_seconds or 0.0, 1),
                    }
                )
            else:
                print(
                    f"step {event.step:>5}  loss {event.train_loss:.4f}  lr {event.learning_rate:.2e}  "
                    f"{event.tokens_per_second:,.0f} tok/s  ETA {event.eta_seconds or 0:.0f} s",
                    flush=True,
                )
        elif isinstance(event, ValidationReport):
            if self.as_json:
                emit_json({"step": event.step, "val_loss": round(event.val_loss, 6)})
            else:
                print(f"step {event.step:>5}  validation loss {event.val_loss:.4f}", flush=True)
        elif isinstance(event, (TrainingLog, TrainingFailed)) and not self.as_json:
            print(event.message, flush=True)
