"""Whether a Hub safetensors model can be fine-tuned on this machine, before downloading it: its ``config.json``
and the shards' headers are read remotely (a few Range requests), then the training estimator
(``core.estimate.training``) sizes a LoRA run with the Fine-tune page's defaults against this machine's memory."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from core.errors import HangarError, UsageError
from core.estimate.training import TrainingEstimate, TrainingSettings, estimate_training
from core.hardware import Hardware
from core.models.safetensors import read_safetensors_hub
from core.models.shape import ModelShape

logger = logging.getLogger(__name__)

#: The run the verdict is for: LoRA rank 8 on every projection, batch 1, 2,048 tokens, gradient checkpointing
#: (the Fine-tune page's simple preset), with PEFT.
TUNE_SETTINGS = TrainingSettings()


def training_estimate(repo_id: str, revision: str, *, token: str | None, hardware: Hardware | None) -> TrainingEstimate:
    """LoRA training memory for ``repo_id`` at ``revision``; HangarError when its config or headers cannot be read."""
    model = read_safetensors_hub(repo_id, revision=revision, token=token)
    try:
        shape = ModelShape.from_config(model.config)
    except UsageError as exc:
        raise HangarError(f"{repo_id}'s config.json does not describe a model the estimator knows ({exc}).") from None
    if not shape.parameter_count:
        shape = replace(shape, parameter_count=sum(math.prod(t.shape) for t in model.tensors))
    estimate = estimate_training(shape, TUNE_SETTINGS, hardware)
    logger.info("%s: LoRA training needs about %.2f GB", repo_id, estimate.total_bytes / 1e9)
    return estimate


__all__ = ["TUNE_SETTINGS", "training_estimate"]
