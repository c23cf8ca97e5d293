"""Fit verdicts for the quants of a Hub repo, before downloading: each GGUF row's header is read remotely (a few
Range requests, core.gguf) and run through the memory estimator (core.estimate) for this machine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import HangarError
from core.estimate import EngineSettings, Estimate, Verdict, estimate_llama
from core.gguf import read_gguf_hub
from core.hardware import Hardware
from core.hubfiles import FileGroup, GroupKind

logger = logging.getLogger(__name__)

#: Best first: a quant that runs fully on the GPU beats one that is split, which beats CPU only.
_RANK = {Verdict.FULL_GPU: 3, Verdict.PARTIAL: 2, Verdict.CPU_ONLY: 1, Verdict.TOO_LARGE: 0}


@dataclass(frozen=True)
class QuantFit:
    key: str
    estimate: Estimate | None = None
    #: Why there is no estimate (the header could not be read, not a GGUF...).
    error: str = ""

    @property
    def verdict(self) -> Verdict | None:
        return self.estimate.verdict if self.estimate else None

    @property
    def fits(self) -> bool:
        return self.verdict is not None and self.verdict != Verdict.TOO_LARGE


def fit_quant(
    repo_id: str,
    revision: str,
    group: FileGroup,
    *,
    token: str | None,
    hardware: Hardware | None,
    settings: EngineSettings,
) -> QuantFit:
    if group.kind != GroupKind.QUANT:
        return QuantFit(group.key, error="not a model file")
    try:
        info = read_gguf_hub(repo_id, group.files[0].path, revision=revision, token=token)
        return QuantFit(group.key, estimate_llama(info, settings, hardware))
    except HangarError as exc:
        logger.info("no fit for %s %s: %s", repo_id, group.key, exc)
        return QuantFit(group.key, error=str(exc))


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
    """Estimate every quant row; ``on_result`` hears each as it is ready (the UI fills badges one by one)."""
    results = []
    for group in groups:
        if group.kind != GroupKind.QUANT:
            continue
        if cancelled():
            break
        result = fit_quant(repo_id, revision, group, token=token, hardware=hardware, settings=settings)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def best_fit(fits: list[QuantFit], sizes: dict[str, int]) -> str | None:
    """The quant to recommend: the best verdict, and among equals the largest file (the highest quality)."""
    candidates = [f for f in fits if f.fits]
    if not candidates:
        return None
    return max(candidates, key=lambda f: (_RANK[f.verdict], sizes.get(f.key, 0))).key  # type: ignore[index]
