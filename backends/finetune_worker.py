"""The fine-tune child process: ``run`` is the entry point handed to ``core.finetune.service``.

It trains with the requested backend and turns every outcome into an event; nothing raised here reaches the app
except as ``TrainingFailed`` or, if the process dies, the parent's "stopped unexpectedly" error. Its own output
(mlx-lm's progress table, transformers and torch warnings, tqdm bars, native libraries' prints) goes to the app's
log file, never to the stdout it inherited: that stdout may carry ``--json`` lines.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from core.errors import HangarError, InsufficientMemoryError
from core.finetune.datasets import TokenStats, token_stats
from core.finetune.types import (
    ExportFinished,
    ExportFormat,
    ExportRequest,
    FinetuneBackend,
    FinetuneRequest,
    TokenStatsReady,
    TokenStatsRequest,
    TrainingFailed,
)

logger = logging.getLogger(__name__)


def run(request: FinetuneRequest | ExportRequest | TokenStatsRequest, events: Any, cancel: Any) -> None:
    # The parent asks politely through ``cancel`` first; SIGINT (then SIGTERM) only if that does not work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    route_output(request.log_file)
    logging.basicConfig(
        level=os.environ.get("HANGAR_ENGINE_LOG", "WARNING"),
        format="%(asctime)s %(levelname)-7s %(name)s [fine-tune child %(process)d] %(message)s",
    )
    from backends.finetune_common import Reporter

    reporter = Reporter(events, cancel)
    try:
        if isinstance(request, ExportRequest):
            events.put(ExportFinished(str(export(request))))
            return
        if isinstance(request, TokenStatsRequest):
            events.put(TokenStatsReady(measure_tokens(request)))
            return
        backend = FinetuneBackend(request.backend)
        if backend == FinetuneBackend.PEFT:
            from backends.finetune_peft import train
        else:
            from backends.finetune_mlx import train
        train(request, reporter)
    except HangarError as exc:
        events.put(TrainingFailed(exc.code, str(exc)))
    except MemoryError:
        events.put(
            TrainingFailed(
                InsufficientMemoryError.code,
                "Training ran out of memory. Try a smaller batch, a shorter maximum length, fewer layers or QLoRA.",
            )
        )
    except Exception as exc:
        logger.error("fine-tune failed:\n%s", traceback.format_exc())
        events.put(TrainingFailed("finetune", f"Training failed: {exc}"))
    finally:
        events.close()
        events.join_thread()


def route_output(log_file: str | None) -> None:
    """Point file descriptors 1 and 2 at the log file (appending), or, without one, stdout at stderr.

    At the descriptor level, so that output from C and C++ code and from libraries holding their own reference
    to ``sys.stdout`` is caught too."""
    sys.stdout.flush()
    sys.stderr.flush()
    target = -1
    if log_file:
        try:
            target = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:  # a log that cannot be opened must not stop training
            print(f"fine-tune child: cannot write to the log {log_file}: {exc}", file=sys.stderr)
    if target == -1:
        os.dup2(2, 1)
        return
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)


def export(request: ExportRequest) -> Path:
    """Write one export of a finished run and return its path."""
    if request.format == ExportFormat.GGUF_LORA:
        from backends.lora_gguf import convert_lora_to_gguf

        return convert_lora_to_gguf(request.adapter, request.output, request.base_model)
    if request.format == ExportFormat.GGUF_BASE:
        from backends.hf_gguf import convert_hf_to_gguf

        return convert_hf_to_gguf(request.base_model, request.output)
    if FinetuneBackend(request.backend) == FinetuneBackend.MLX:
        from backends.finetune_mlx import fuse_adapter

        return fuse_adapter(request.base_model, request.adapter, request.output)
    from backends.finetune_peft import merge_adapter

    return merge_adapter(request.base_model, request.adapter, request.output)


def measure_tokens(request: TokenStatsRequest) -> TokenStats:
    """Token lengths as training will see them: the base model's tokenizer and chat template."""
    from transformers import AutoTokenizer

    from backends.finetune_common import encode_record

    tokenizer = AutoTokenizer.from_pretrained(request.base_model)
    return token_stats(
        request.examples,
        lambda e: len(encode_record(tokenizer, e.record, request.mask_prompt)[0]),
        request.max_length,
    )
