"""Exports of a finished fine-tune, each a job running in the fine-tune child process: the merged model (MLX
fuse, or PEFT merge → safetensors), the adapter as a GGUF LoRA for llama.cpp, and the base as a GGUF to pair
it with. GGUF LoRA files are added to the library like the adapter itself.

This module knows nothing of the service: it gets the run, the child's entry point and the library hook."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import CancelledError, FinetuneError, error_from_code
from core.finetune.runs import FinetuneRun
from core.finetune.types import ExportFinished, ExportFormat, ExportRequest, TrainingFailed, is_final
from core.jobs import JobContext, JobState
from core.process import describe_exit, run_child

logger = logging.getLogger(__name__)

DEFAULT_NAMES = {
    ExportFormat.MERGED: "merged",
    ExportFormat.GGUF_LORA: "adapter-lora-f32.gguf",
    ExportFormat.GGUF_BASE: "base-f16.gguf",
}


def export_request(
    run: FinetuneRun, fmt: ExportFormat | str, output: str | Path | None = None, *, log_file: str | None = None
) -> ExportRequest:
    """What the child needs to export ``run``; refuses a run that has not finished or a target that exists."""
    adapter = run.adapter_path
    if run.job.state != JobState.SUCCEEDED or adapter is None:
        raise FinetuneError(f"“{run.job.title}” has not finished; only a finished run can be exported.")
    fmt = ExportFormat(fmt)
    target = Path(output) if output else run.run_dir / DEFAULT_NAMES[fmt]
    if target.exists():
        raise FinetuneError(f"{target} already exists.", hint="Choose another output path or remove it.")
    return ExportRequest(fmt, run.backend, run.base_model, str(adapter), str(target), log_file)


def run_export(
    ctx: JobContext,
    request: ExportRequest,
    entry: Callable[[Any, Any, Any], None],
    register_adapter: Callable[[Path, str], str] | None,
) -> dict[str, Any]:
    """The export job: run the child, then add a GGUF LoRA to the library. Result: ``{"path", "format"}``."""
    ctx.report(None, f"Writing {Path(request.output).name}…")
    # Exports have no safe point to stop at: a cancel ends the child after a short grace period.
    outcome, exitcode = run_child(
        entry, request, ctx.token, lambda e: None, is_final=is_final, grace=2.0, name=f"export-{ctx.job_id}"
    )
    if isinstance(outcome, TrainingFailed):
        raise error_from_code(outcome.code, outcome.message)
    if not isinstance(outcome, ExportFinished):
        if ctx.token.cancelled:
            raise CancelledError()
        raise FinetuneError(f"The export stopped unexpectedly. {describe_exit(exitcode)}")
    result: dict[str, Any] = {"path": outcome.path, "format": str(request.format)}
    if request.format == ExportFormat.GGUF_LORA and register_adapter is not None:
        try:
            result["library_id"] = register_adapter(Path(outcome.path), request.base_model)
        except Exception as exc:  # the file is written either way
            logger.warning("could not add %s to the library: %s", outcome.path, exc)
    return result
