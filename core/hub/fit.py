"""Fit badges for the rows of a Hub repo, before downloading: each GGUF quant's header (a split set's parts
too) and an MLX model's config and safetensors headers are read remotely with a few Range requests, then run
through the fit helper's estimators (core.estimate.fitting) for this machine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import HangarError
from core.estimate.fitting import FitLevel, ModelHeader, estimate_header, fit_level, preferred_quant
from core.estimate.llama import EngineSettings, Estimate, Verdict
from core.estimate.mlx import MlxEstimate
from core.estimate.training import TrainingEstimate
from core.gguf import read_gguf_hub
from core.hardware import Hardware
from core.hub.files import FileGroup, GroupKind
from core.models.safetensors import read_safetensors_hub

logger = logging.getLogger(__name__)

ESTIMATED_KINDS = (GroupKind.QUANT, GroupKind.MLX, GroupKind.SAFETENSORS)
#: Best first: fully on the GPU beats split across GPU and CPU, which beats the CPU alone.
_RANK = {Verdict.FULL_GPU: 3, Verdict.PARTIAL: 2, Verdict.CPU_ONLY: 1, Verdict.TOO_LARGE: 0}


@dataclass(frozen=True)
class QuantFit:
    key: str
    estimate: Estimate | MlxEstimate | None = None
    #: Why there is no estimate (the header could not be read, not a model...).
    error: str = ""
    #: For a safetensors model (fine-tuning): the memory a LoRA run needs here, instead of ``estimate``.
    training: TrainingEstimate | None = None

    @property
    def level(self) -> FitLevel:
        if self.training is not None:
            return FitLevel.FITS if self.training.fits else FitLevel.TOO_LARGE
        return fit_level(self.estimate)

    @property
    def fits(self) -> bool:
        return self.level in (FitLevel.FITS, FitLevel.PARTIAL)

    @property
    def rank(self) -> int:
        if isinstance(self.estimate, Estimate):
            return _RANK[self.estimate.verdict]
        return 3 if self.fits else 0


def fit_group(
    repo_id: str,
    revision: str,
    group: FileGroup,
    *,
    token: str | None,
    hardware: Hardware | None,
    settings: EngineSettings,
) -> QuantFit:
    try:
        if group.kind == GroupKind.QUANT:
            header = ModelHeader(
                group.key, gguf=read_gguf_hub(repo_id, group.files[0].path, revision=revision, token=token)
            )
        elif group.kind == GroupKind.SAFETENSORS:
            return _training_fit(repo_id, revision, group, token=token, hardware=hardware)
        elif group.kind == GroupKind.MLX:
            header = ModelHeader(group.key, safetensors=read_safetensors_hub(repo_id, revision=revision, token=token))
        else:
            return QuantFit(group.key, error="not a model")
        return QuantFit(group.key, estimate_header(header, settings, hardware))
    except HangarError as exc:
        logger.info("no fit for %s %s: %s", repo_id, group.key, exc)
        return QuantFit(group.key, error=str(exc))


def _training_fit(
    repo_id: str, revision: str, group: FileGroup, *, token: str | None, hardware: Hardware | None
) -> QuantFit:
    from core.hub.tune_fit import training_estimate

    return QuantFit(group.key, training=training_estimate(repo_id, revision, token=token, hardware=hardware))


def fit_all(
    repo_id: str,
    revision: str,
    groups: list[FileGroup],
    *,
    token: str | None,
    hardware: Hardware | None,
    settings: EngineSettings,
    on_result: Callable[[QuantFit], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[QuantFit]:
    """Estimate every model row; ``on_result`` hears each as it is ready (the UI fills badges one by one)."""
    results = []
    for group in groups:
        if group.kind not in ESTIMATED_KINDS:
            continue
        if cancelled():
            break
        result = fit_group(repo_id, revision, group, token=token, hardware=hardware, settings=settings)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def best_fit(fits: list[QuantFit], sizes: dict[str, int]) -> str | None:
    """The row to recommend: the best verdict, and among equals the largest file (the highest quality). When no
    row could be estimated at all, the usual default download (Q4_K_M-like), never the smallest, worst quant."""
    candidates = [f for f in fits if f.fits]
    if not candidates:
        if fits and all(f.level is FitLevel.UNKNOWN for f in fits):
            return preferred_quant([f.key for f in fits])
        return None
    return max(candidates, key=lambda f: (f.rank, sizes.get(f.key, 0))).key
