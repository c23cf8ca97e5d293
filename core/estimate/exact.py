"""The exact answer where it is cheap: llama.cpp's own memory-fit pass for a file on disk, run by the engine in a
child process (``backends.facts.fit_in_child``, handed to the app as ``AppContext.fit_runner``). The pass builds
the model and the context with empty buffers, so the KV cache, compute and output sizes are the allocator's own;
the weights stay what the header and the engine facts say (exact per tensor). If the pass cannot run, the
analytic estimate stands and says why. For a Hub file before download, ``header_stub`` writes a sparse local file
carrying the real header at the real size (the pass reads no tensor data), so the same pass serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.estimate.llama import SOURCE_ANALYTIC, SOURCE_FIT, DeviceUsage, Estimate, Verdict
from core.gguf.info import GGUFInfo
from core.gguf.source import ByteSource
from core.gguf.types import ggml_type_from_name

logger = logging.getLogger(__name__)

FitRunner = Callable[[dict[str, Any]], dict[str, Any]]


def fit_request(path: Path, estimate: Estimate, rpc: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fit pass's request; ``rpc``: workers the child registers first, so that llama.cpp sizes their buffers
    too (each worker serves one client at a time: only while no engine uses them)."""
    settings = estimate.settings
    return {
        "rpc": list(rpc),
        "path": str(path),
        "n_ctx": estimate.n_ctx,
        "n_batch": settings.n_batch,
        "n_ubatch": settings.n_ubatch,
        "gpu_layers": estimate.gpu_layers,
        "kv_type": ggml_type_from_name(settings.kv_cache_type),
        "flash_attention": settings.flash_attention,
        "extra_buffers": settings.extra_buffers,
    }


def _is_host(name: str) -> bool:
    return name == "CPU" or name.startswith("CPU") or name.endswith("_Host")


def apply_fit(estimate: Estimate, fit: dict[str, Any]) -> Estimate:
    """The estimate with KV, compute and output replaced by what llama.cpp's fit pass reported."""
    if estimate.source != SOURCE_ANALYTIC:
        return estimate
    compute: dict[str, int] = {}
    for name, size in dict(fit.get("compute", {})).items():
        key = "CPU" if _is_host(name) else name
        compute[key] = compute.get(key, 0) + int(size)
    output = sum(int(v) for v in dict(fit.get("output", {})).values())
    kv_total = int(fit.get("kv", 0))
    analytic_kv = sum(d.kv for d in estimate.devices) or 1
    devices: list[DeviceUsage] = []
    for device in estimate.devices:
        share = device.kv / analytic_kv if len(estimate.devices) > 1 else 1.0
        devices.append(
            replace(
                device,
                kv=round(kv_total * share),
                compute=compute.get(device.device, 0) if compute else device.compute,
                output=output if device.is_host else 0,
            )
        )
    verdict = estimate.verdict
    if not all(d.fits for d in devices):
        verdict = Verdict.TOO_LARGE
    elif verdict is Verdict.TOO_LARGE:
        verdict = Verdict.CPU_ONLY if estimate.gpu_layers == 0 else Verdict.PARTIAL
    notes = (*estimate.notes, "KV cache, compute and output buffers from llama.cpp's own fit pass.")
    return replace(estimate, devices=tuple(devices), verdict=verdict, source=SOURCE_FIT, notes=notes)


def refine(estimate: Estimate, path: Path, runner: FitRunner | None, rpc: tuple[str, ...] = ()) -> Estimate:
    """Run the fit pass for ``path`` (with the RPC workers ``rpc`` as devices) and apply it; on any failure keep
    the analytic estimate, with a note."""
    if runner is None or estimate.source != SOURCE_ANALYTIC or not path.is_file():
        return estimate
    try:
        fit = runner(fit_request(path, estimate, rpc))
    except Exception as error:  # the child crashed or refused the file: the analytic answer stands
        logger.info("llama.cpp fit pass for %s failed: %s", path, error)
        return replace(estimate, notes=(*estimate.notes, f"llama.cpp's fit pass did not run ({error}); analytic."))
    return apply_fit(estimate, fit)


def header_stub(source: ByteSource, info: GGUFInfo, dest: Path) -> Path | None:
    """A sparse file at ``dest``: the real header of ``source`` (one Range read), then a hole up to the file's real
    size, which takes no disk space. None for split sets and files whose size the server did not say."""
    if info.split_count != 1 or not info.file_size or info.header_bytes <= 0:
        return None
    header = source.read_at(0, info.header_bytes)
    if len(header) != info.header_bytes:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as handle:
        handle.write(header)
        handle.truncate(info.file_size)
    return dest


__all__ = ["FitRunner", "apply_fit", "fit_request", "header_stub", "refine"]
