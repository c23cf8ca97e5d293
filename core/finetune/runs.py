"""A fine-tune run as the history shows it: the job, its typed settings and its loss curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.finetune.types import FinetuneBackend, FinetuneConfig, TrainJobParams
from core.jobs import Job


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float


@dataclass(frozen=True)
class FinetuneRun:
    job: Job
    params: TrainJobParams
    train_curve: tuple[LossPoint, ...] = ()
    val_curve: tuple[LossPoint, ...] = ()

    @property
    def backend(self) -> FinetuneBackend:
        return self.params.backend

    @property
    def base_model(self) -> str:
        return self.params.base_model

    @property
    def dataset(self) -> str:
        return self.params.dataset

    @property
    def run_dir(self) -> Path:
        return Path(self.params.run_dir)

    @property
    def config(self) -> FinetuneConfig:
        return self.params.config

    @property
    def total_steps(self) -> int:
        return self.params.total_steps

    @property
    def adapter_path(self) -> Path | None:
        result = self.job.result or {}
        return Path(result["adapter_path"]) if result.get("adapter_path") else None
