"""One entry point for "will this model fit?": resolve a target (a local GGUF file or model folder, or a Hub
``REPO[:FILE]`` read remotely, header only), estimate it for this machine, and grade the answer for badges.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import NotFoundError, UsageError
from core.estimate import EngineSettings, Estimate, Verdict, estimate_llama
from core.estimate_mlx import MlxEstimate, estimate_mlx
from core.gguf import GGUFInfo, read_gguf, read_gguf_hub
from core.safetensors import SafetensorsModel, read_safetensors_dir, read_safetensors_hub

if TYPE_CHECKING:
    from core.hardware import Hardware

_HUB_TARGET = re.compile(r"^(?P<repo>[\w.\-]+/[\w.\-]+)(?::(?P<file>.+))?$")


class FitLevel(enum.StrEnum):
    """What a badge shows."""

    FITS = "fits"
    PARTIAL = "partial"
    TOO_LARGE = "too_large"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ModelHeader:
    """A model as read for estimating: a GGUF header, or a safetensors/MLX model."""

    target: str
    gguf: GGUFInfo | None = None
    safetensors: SafetensorsModel | None = None
    remote: bool = False


def read_target(
    target: str, *, token: str | None = None, revision: str | None = None, session: Any = None
) -> ModelHeader:
    """A local path (GGUF file, split part, or safetensors folder) or ``REPO[:FILE]`` on the Hub."""
    path = Path(target).expanduser()
    if path.exists():
        if path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            if (path / "config.json").is_file():
                return ModelHeader(target, safetensors=read_safetensors_dir(path))
            if len(ggufs) == 1:
                return ModelHeader(target, gguf=read_gguf(ggufs[0]))
            raise UsageError(f"{path} holds {len(ggufs)} GGUF files; name one.")
        return ModelHeader(target, gguf=read_gguf(path))
    match = _HUB_TARGET.match(target)
    if not match:
        raise NotFoundError(f"{target} is neither a file nor a Hub repository (owner/name[:file]).")
    repo, filename = match.group("repo"), match.group("file")
    if filename:
        return ModelHeader(
            target, gguf=read_gguf_hub(repo, filename, revision=revision, token=token, session=session), remote=True
        )
    try:
        model = read_safetensors_hub(repo, revision=revision, token=token, session=session)
    except NotFoundError:
        raise NotFoundError(
            f"{repo} has no config.json; for a GGUF repository name the file: {repo}:FILE.gguf"
        ) from None
    return ModelHeader(target, safetensors=model, remote=True)


def estimate_header(
    header: ModelHeader, settings: EngineSettings = EngineSettings(), hardware: Hardware | None = None
) -> Estimate | MlxEstimate:
    if header.gguf is not None:
        return estimate_llama(header.gguf, settings, hardware)
    assert header.safetensors is not None
    context = settings.context_length or 4096
    kv_bits = {"q8_0": 8, "q4_0": 4}.get(settings.kv_cache_type)
    return estimate_mlx(header.safetensors, context, hardware, kv_bits=kv_bits)


def fit_level(estimate: Estimate | MlxEstimate | None) -> FitLevel:
    if estimate is None:
        return FitLevel.UNKNOWN
    if isinstance(estimate, MlxEstimate):
        return FitLevel.FITS if estimate.fits else FitLevel.TOO_LARGE
    return {
        Verdict.FULL_GPU: FitLevel.FITS,
        Verdict.CPU_ONLY: FitLevel.FITS,
        Verdict.PARTIAL: FitLevel.PARTIAL,
        Verdict.TOO_LARGE: FitLevel.TOO_LARGE,
    }[estimate.verdict]
