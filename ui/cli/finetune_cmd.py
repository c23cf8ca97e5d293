"""``hangar finetune``: train a LoRA adapter on a model folder and a dataset, printing progress as it goes.

With ``--json`` every line is one JSON object: ``{"event": "memory", ...}`` before training, ``{"step", "train_loss",
...}`` per step, ``{"step", "val_loss"}`` per evaluation, and a final ``{"adapter_path", ...}``. Ctrl+C cancels
(the last checkpoint is kept: ``--resume JOB_ID`` continues from it).

Settings start from the backend's defaults (``core.finetune.presets``: mlx-lm's for MLX, PEFT's for PEFT), or from
``--preset quick|balanced|thorough``; each option given changes only its own setting. Only JSON reaches stdout
with ``--json``: the training child's own output goes to the log file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import CancelledError, FinetuneError
from core.finetune.datasets import CsvColumns, load_dataset
from core.finetune.presets import Preset, default_config, preset_config
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
    parser.add_argument(
        "--preset",
        choices=[p.value for p in Preset],
        help="quick: one pass, small adapter; balanced: three passes; thorough: five passes, larger adapter "
        "(the options below override it)",
    )
    # Unset options take the backend's defaults (core.finetune.presets): mlx-lm's for MLX, PEFT's for PEFT.
    parser.add_argument("--iters", type=int, help=f"training steps (default {DEFAULTS.iters})")
    parser.add_argument("--epochs", type=float, help="train for this many passes instead of --iters")
    parser.add_argument("--rank", type=int, help="LoRA rank (default: 16 for PEFT, 8 for MLX)")
    parser.add_argument("--alpha", type=float, help="LoRA alpha; scale = alpha / rank (2 for PEFT, 20 for MLX)")
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--target-modules", help="comma-separated (default: every linear projection)")
    parser.add_argument("--layers", type=int, help="last N layers (-1: all, the default)")
    parser.add_argument("--learning-rate", type=float, help="default: 2e-4 for PEFT, 1e-5 for MLX")
    parser.add_argument(
        "--schedule",
        choices=[s.value for s in LrSchedule],
        help="default: linear with warm-up for PEFT, constant for MLX",
    )
    parser.add_argument("--warmup", type=int, help="warm-up steps (default: 5 for PEFT, 0 for MLX)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--checkpoint-every", type=int)
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


#: ``FinetuneConfig`` field for each option that sets one directly.
_FIELDS = {
    "iters": "iters",
    "epochs": "epochs",
    "rank": "rank",
    "alpha": "alpha",
    "dropout": "dropout",
    "layers": "num_layers",
    "learning_rate": "learning_rate",
    "warmup": "warmup_steps",
    "batch_size": "batch_size",
    "max_length": "max_length",
    "seed": "seed",
    "eval_every": "eval_every",
    "checkpoint_every": "checkpoint_every",
}


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The backend's defaults (or the preset's), then every option the user gave."""
    base = preset_config(args.preset, args.backend) if args.preset else default_config(args.backend)
    changes: dict[str, object] = {
        name: getattr(args, option) for option, name in _FIELDS.items() if getattr(args, option) is not None
    }
    if args.rank is not None and args.alpha is None:
        changes["alpha"] = base.scale * args.rank  # keep the backend's LoRA scale
    if args.iters is not None and args.epochs is None:
        changes["epochs"] = None  # an explicit step count wins over a preset's passes
    if args.target_modules is not None:
        changes["target_modules"] = tuple(m.strip() for m in args.target_modules.split(",") if m.strip())
    if args.schedule is not None:
        changes["schedule"] = LrSchedule(args.schedule)
    changes["quantize_4bit"] = args.qlora
    changes["grad_checkpoint"] = args.grad_checkpoint
    return base.with_(**changes).validate()


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
