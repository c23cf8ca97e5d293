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
from core.estimate.llama import EngineSettings, Estimate, Verdict, estimate_llama
from core.estimate.mlx import MlxEstimate, estimate_mlx
from core.gguf import GGUFInfo, read_gguf, read_gguf_hub
from core.models.projector import is_projector_name
from core.models.safetensors import SafetensorsModel, read_safetensors_dir, read_safetensors_hub

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
            ggufs = sorted(p for p in path.glob("*.gguf") if not is_projector_name(p.name))
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
        filename = choose_gguf(repo, list_hub_files(repo, revision=revision, token=token))
        info = read_gguf_hub(repo, filename, revision=revision, token=token, session=session)
        return ModelHeader(f"{repo}:{filename}", gguf=info, remote=True)
    return ModelHeader(target, safetensors=model, remote=True)


def list_hub_files(repo: str, *, revision: str | None = None, token: str | None = None) -> list[str]:
    """File names of a Hub repository (through huggingface_hub, honouring HF_ENDPOINT as it is now)."""
    import os

    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    from core.errors import AuthError, NetworkError

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or False)
    try:
        return list(api.list_repo_files(repo, revision=revision))
    except GatedRepoError:
        raise AuthError(f"{repo} is gated.", hint="Accept its licence on the Hub and log in with a token.") from None
    except RepositoryNotFoundError:
        raise NotFoundError(f"{repo} was not found on the Hub (or it is private).") from None
    except HfHubHTTPError as error:
        if getattr(getattr(error, "response", None), "status_code", None) == 404:
            raise NotFoundError(f"{repo} was not found on the Hub (or it is private).") from None
        raise NetworkError(f"Could not list {repo}: {error}") from None
    except OSError as error:
        raise NetworkError(f"Could not reach the Hub to list {repo}: {error}") from None


#: Which quant to estimate when a repository holds many and none was named (the usual default download).
PREFERRED_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q8_0")
_LATER_PART = re.compile(r"-(?!00001)\d{5}-of-\d{5}\.gguf$")


def preferred_quant(names: list[str]) -> str | None:
    """The name holding the first of ``PREFERRED_QUANTS`` (Q4_K_M first), None if none does."""
    for quant in PREFERRED_QUANTS:
        match = next((n for n in names if quant.lower() in n.lower()), None)
        if match:
            return match
    return None


def choose_gguf(repo: str, files: list[str]) -> str:
    """One GGUF of a repository: the only one, the first part of the only split set, or a Q4_K_M-like quant."""
    models = sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in f.lower())
    firsts = [f for f in models if not _LATER_PART.search(f)]
    if not firsts:
        raise NotFoundError(f"{repo} has neither a config.json nor any .gguf file.")
    if len(firsts) == 1:
        return firsts[0]
    for quant in PREFERRED_QUANTS:
        match = next((f for f in firsts if quant.lower() in f.lower()), None)
        if match:
            return match
    listing = ", ".join(firsts[:8]) + (" …" if len(firsts) > 8 else "")
    raise UsageError(f"{repo} has {len(firsts)} GGUF files; name one as {repo}:FILE ({listing}).")


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


def rough_fit_level(file_size: int, hardware: Hardware | None, context_length: int = 4096) -> FitLevel:
    """A badge for a file whose header was not read yet (Hub file lists): weights ≈ the file size, plus a
    modest allowance for the KV cache and compute buffers. Read the header for a real estimate."""
    if hardware is None or file_size <= 0:
        return FitLevel.UNKNOWN
    from core.estimate.llama import GPU_OVERHEAD, HOST_BASELINE

    extra = int(file_size * 0.08 * max(context_length, 512) / 4096) + 256 * 2**20
    need = file_size + extra
    gpus = [g for g in hardware.gpus if g.total_bytes > 0] if hardware.engines.llama_gpu_offload else []
    gpu_room = sum(max(0, g.budget_bytes - GPU_OVERHEAD.get(g.api, 0) - 512 * 2**20) for g in gpus)
    host_room = max(0, hardware.ram_available_bytes - HOST_BASELINE - 2**30)
    if gpus and need <= gpu_room:
        return FitLevel.FITS
    if not gpus and need <= host_room:
        return FitLevel.FITS
    if need <= gpu_room + host_room:
        return FitLevel.PARTIAL
    return FitLevel.TOO_LARGE


def choose_gpu_layers(info: GGUFInfo, settings: EngineSettings, hardware: Hardware | None) -> int:
    """Resolve "auto" for ``LoadOptions.gpu_layers`` before a load: the most layers that fit (-1 = all of them,
    0 = CPU only). Chat and benchmarks call this with ``settings.gpu_layers=None``."""
    estimate = estimate_llama(info, settings, hardware)
    if estimate.gpu_layers >= info.block_count + 1:
        return -1
    return estimate.gpu_layers
