"""Which model a chat runs and how it is loaded: engine from the path, load options from the settings, GPU layers
"auto" from the memory estimator, and the estimate shown next to what the engine really allocated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.engine.protocol import LoadOptions, ModelInfo, ModelSpec, RemoteTarget
from core.errors import ModelFileError, NotFoundError, UnsupportedModelError, UsageError
from core.estimate.plan import (  # the estimation helpers live in core.estimate; kept importable from here
    AUTO_GPU_LAYERS as AUTO_GPU_LAYERS,
)
from core.estimate.plan import auto_gpu_layers as auto_gpu_layers
from core.estimate.plan import default_context, estimated_bytes
from core.estimate.plan import estimate_load as estimate_load
from core.estimate.plan import estimate_mlx_load as estimate_mlx_load
from core.estimate.plan import memory_advice as memory_advice
from core.estimate.records import device_allocation
from core.models.projector import find_projector

if TYPE_CHECKING:
    from core.estimate.llama import Estimate
    from core.estimate.mlx import MlxEstimate
    from core.library.service import Library
    from core.remote.service import RemoteService
    from core.settings import Settings

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ResolvedModel:
    engine: str  # "llama" | "mlx" | "remote"
    path: Path
    name: str
    #: Set when the model runs on a remote server (``NAME:MODEL``, ``core.remote``).
    remote: RemoteTarget | None = None
    #: A vision model's projector (``mmproj*.gguf`` beside it), loaded with it so chats take images.
    projector: Path | None = None


def engine_for(path: Path) -> str:
    """``.gguf`` file → llama.cpp; a folder with ``config.json`` → MLX."""
    if path.is_file() and path.suffix.lower() == ".gguf":
        return "llama"
    if path.is_dir():
        if (path / "config.json").is_file():
            return "mlx"
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return "llama"
        raise ModelFileError(
            f"{path} is neither an MLX model folder (no config.json) nor a folder with one GGUF file.",
            hint="Give the path of a .gguf file, or of a folder with config.json and .safetensors files.",
        )
    if path.is_file():
        raise ModelFileError(
            f"{path.name} is not a model Hangar can run.", hint="Hangar runs .gguf files and MLX model folders."
        )
    raise NotFoundError(f"No model at {path}.")


def resolve_model(
    name_or_path: str, library: Library | None = None, remotes: RemoteService | None = None
) -> ResolvedModel:
    """A library name or id, a path to a model, or a saved remote server's ``NAME[:MODEL]`` → engine and file.
    Without a library, paths only (and remotes, when given)."""
    if not name_or_path.strip():
        raise UsageError("Name a model: a name from your library, a .gguf file or an MLX model folder.")
    if remotes is not None and not Path(name_or_path).expanduser().exists():
        named = remotes.split_name(name_or_path)
        if named is not None:
            target = remotes.target(*named)
            label = f"{target.server}:{target.model}"
            return ResolvedModel("remote", Path(label), label, remote=target)
    path = Path(name_or_path).expanduser()
    looks_like_path = "/" in name_or_path or "\\" in name_or_path or path.suffix.lower() == ".gguf"
    if looks_like_path and not path.exists():
        raise NotFoundError(f"No model at {name_or_path}.", hint="Check the path, or use a name from `hangar ls`.")
    if library is not None:
        entry = library.resolve(name_or_path)
        if entry.engine is None:
            raise UnsupportedModelError(
                f"{entry.name} is a LoRA adapter, not a model to chat with.",
                hint="Load its base model and choose the adapter in the load options.",
            )
        if not entry.available:
            raise ModelFileError(
                f"The files of {entry.name} are missing from {entry.root}.",
                hint="Download or import the model again, or remove it from the library.",
            )
        projector = entry.projector.resolve() if entry.projector else None
        return ResolvedModel(entry.engine, entry.load_path.resolve(), entry.name, projector=projector)
    if not path.exists():
        raise NotFoundError(f"No model at {name_or_path}.", hint="Give the path of a .gguf file or an MLX folder.")
    engine = engine_for(path)
    if engine == "llama" and path.is_dir():
        path = sorted(path.glob("*.gguf"))[0]
    projector = find_projector(path.parent) if engine == "llama" else None
    name = path.stem if path.is_file() else path.name
    return ResolvedModel(engine, path.resolve(), name, projector=projector.resolve() if projector else None)


def load_options(
    settings: Settings,
    *,
    context_length: int | None = None,
    gpu_layers: str | int | None = None,
    kv_cache_type: str = "f16",
    flash_attention: bool = False,
    threads: int | None = None,
    lora_path: str | None = None,
    model: ResolvedModel | None = None,
    rpc_servers: tuple[str, ...] = (),
) -> LoadOptions:
    """Load options from the user's settings, with per-load overrides. "auto" GPU layers stays symbolic. With
    ``model``, the default context never exceeds what the model was trained for (a longer one must be asked)."""
    layers = settings.gpu_layers if gpu_layers is None else str(gpu_layers)
    if layers == "auto":
        resolved = AUTO_GPU_LAYERS
    else:
        try:
            resolved = int(layers)
        except ValueError:
            raise UsageError("GPU layers must be 'auto', -1 (all) or a whole number.") from None
    return LoadOptions(
        context_length=context_length
        or default_context(model.path if model is not None else None, settings.default_context_length),
        gpu_layers=resolved,
        kv_cache_type=kv_cache_type,
        flash_attention=flash_attention,
        threads=threads,
        lora_path=lora_path,
        rpc_servers=rpc_servers,
    )


def spec_for(model: ResolvedModel, options: LoadOptions) -> ModelSpec:
    if model.remote is not None:
        return ModelSpec("remote", str(model.path), options, remote=model.remote)
    projector = str(model.projector) if model.projector else None
    return ModelSpec(model.engine, str(model.path), options, projector=projector)


def memory_lines(info: ModelInfo, estimate: Estimate | MlxEstimate | None) -> list[str]:
    """What the engine allocated, per kind of buffer, next to the estimate where there is one."""
    allocated: dict[str, int] = {}
    for key, size in info.allocated.items():
        kind = key.split(":", 1)[0]
        allocated[kind] = allocated.get(kind, 0) + size
    estimated: dict[str, int] = {}
    if estimate is not None and not hasattr(estimate, "component"):  # MLX: weights now, KV while chatting
        estimated = {"model": int(estimate.weights)}
    elif estimate is not None:
        estimated = {
            "model": estimate.component("weights") + estimate.component("repack"),
            "kv": estimate.component("kv"),
            "compute": estimate.component("compute"),
            "output": estimate.component("output"),
        }
    lines = []
    for kind in ("model", "kv", "compute", "output", "projector"):
        if kind not in allocated and kind not in estimated:
            continue
        real = f"{allocated[kind] / _MIB:,.1f} MiB" if kind in allocated else "—"
        guess = f" (estimated {estimated[kind] / _MIB:,.1f} MiB)" if kind in estimated else ""
        lines.append(f"{_KIND_NAMES[kind]}: {real}{guess}")
    total = sum(allocated.values())
    if total:
        expected = estimated_bytes(estimate)
        guess = f" (estimated {expected / _MIB:,.1f} MiB)" if expected is not None else ""
        lines.append(f"Total allocated: {total / _MIB:,.1f} MiB{guess}")
    if info.rpc_memory:  # spread over RPC workers: each device's share, allocated and estimated
        lines.append("Per device:")
        for row in device_allocation(estimate if hasattr(estimate, "component") else None, info.allocated):  # type: ignore[arg-type]
            guess = f" (estimated {row['estimate_mib']:,.1f} MiB)" if row["estimate_mib"] is not None else ""
            lines.append(f"  {row['device']}: {row['actual_mib']:,.1f} MiB{guess}")
    return lines


_KIND_NAMES = {
    "model": "Weights",
    "kv": "KV cache",
    "compute": "Compute buffers",
    "output": "Output buffer",
    "projector": "Vision projector",
}
