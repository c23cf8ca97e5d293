"""Plan a model spread over RPC workers: each worker's devices become offload devices of the estimate (llama.cpp
puts RPC devices first and splits layers by their free memory), so the estimator gives the per-device breakdown,
the split and the verdict, named as llama.cpp names the buffers (``RPC0[host:port]``) so that the actual allocation
after a load can be put next to it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hardware import GpuDevice, Hardware
from core.remote.rpc import WorkerDevice, WorkerInfo

if TYPE_CHECKING:
    from core.engine.protocol import LoadOptions, ModelInfo
    from core.estimate.llama import Estimate

_RPC_NAME = re.compile(r"^RPC(\d+)\[(.+)\]$")


def with_workers(hardware: Hardware, workers: list[WorkerInfo]) -> tuple[Hardware, list[str]]:
    """This machine's hardware with the workers' devices in front of its own GPUs, and llama.cpp's buffer name
    for each worker device in that order."""
    devices: list[GpuDevice] = []
    names: list[str] = []
    for info in workers:
        for device in info.devices:
            devices.append(
                GpuDevice(
                    index=len(devices),
                    name=f"RPC worker {info.endpoint}",
                    vendor="rpc",
                    api="rpc",
                    total_bytes=device.total_bytes,
                    free_bytes=device.free_bytes,
                )
            )
            names.append(f"RPC{device.index}[{info.endpoint}]")
    local = [replace(g, index=len(devices) + i) for i, g in enumerate(hardware.gpus)]
    engines = replace(hardware.engines, llama_gpu_offload=True)
    return replace(hardware, gpus=(*devices, *local), engines=engines), names


def name_devices(estimate: Estimate, names: list[str]) -> Estimate:
    """Rename the estimate's worker devices to llama.cpp's buffer names."""
    devices = list(estimate.devices)
    for position, name in enumerate(names, start=1):
        if position < len(devices):
            devices[position] = replace(devices[position], device=name)
    return replace(estimate, devices=tuple(devices))


def split_of(estimate: Estimate) -> list[dict[str, object]]:
    """Per device: what it holds, for ``estimate --rpc --json``."""
    rows = []
    for device in estimate.devices:
        rows.append(
            {
                "device": device.device,
                "weights_bytes": device.weights + device.repack,
                "kv_bytes": device.kv,
                "compute_bytes": device.compute,
                "total_bytes": device.total,
                "budget_bytes": device.budget,
                "fits": device.budget is None or device.total <= device.budget,
            }
        )
    return rows


def workers_from_memory(memory: Mapping[str, tuple[int, int]]) -> list[WorkerInfo]:
    """The workers as the engine saw them when it placed the layers (``ModelInfo.rpc_memory``), in its order."""
    workers: dict[str, list[WorkerDevice]] = {}
    for name, (free, total) in memory.items():
        match = _RPC_NAME.match(name)
        if match:
            workers.setdefault(match.group(2), []).append(WorkerDevice(int(match.group(1)), free, total))
    return [WorkerInfo(endpoint, True, devices=tuple(devices)) for endpoint, devices in workers.items()]


def rpc_gpu_layers(gpu_layers: int) -> int:
    """The layers a load over workers puts on them, as the engine decides: "auto" or 0 mean all of them."""
    from core.estimate.plan import AUTO_GPU_LAYERS

    return -1 if gpu_layers in (AUTO_GPU_LAYERS, 0) else gpu_layers


def estimate_for_load(path: Path, options: LoadOptions, hardware: Hardware | None, info: ModelInfo) -> Estimate | None:
    """The estimator's figure for a llama.cpp load that happened, per device as llama.cpp placed it: on this
    machine alone, or spread over the RPC workers by the free memory they reported to the engine."""
    from core.estimate.plan import estimate_load

    if info.safe_mode:  # the engine loaded in safe mode: its first step turns the extra buffer types off
        flash = options.flash_attention and not any("flash attention" in change for change in info.safe_mode)
        options = replace(options, use_extra_bufts=False, flash_attention=flash)
    if not options.rpc_servers:
        layers = 0 if info.device == "cpu" else (None if options.gpu_layers < -1 else options.gpu_layers)
        return estimate_load(path, options, hardware, gpu_layers=layers)
    workers = workers_from_memory(info.rpc_memory)
    if hardware is None or not workers:
        return None
    spread, names = with_workers(hardware, workers)
    estimate = estimate_load(path, options, spread, gpu_layers=rpc_gpu_layers(options.gpu_layers))
    return name_devices(estimate, names) if estimate is not None else None


def refine_over_workers(
    estimate: Estimate, path: Path, runner: Any, endpoints: tuple[str, ...], n_embd: int
) -> Estimate:
    """llama.cpp's fit pass with the workers registered in its child: each device's compute buffer from the
    allocator itself (``source`` says "llama.cpp fit"; the analytic split stands if the pass cannot run). The dry
    run keeps four micro-batch rows alive on the device holding the output layer that a real load reuses (on the
    bundled build, six shapes: exactly ``16 * n_ub * n_embd`` bytes) when it also holds blocks; it is corrected."""
    from core.estimate.exact import refine
    from core.estimate.llama import SOURCE_FIT

    refined = refine(estimate, path, runner, endpoints)
    last = refined.devices[-1]
    if refined.source != SOURCE_FIT or not last.device.startswith("RPC") or not last.kv:  # kv: it holds blocks
        return refined
    n_ub = min(refined.settings.n_ubatch, refined.settings.n_batch, refined.n_ctx)
    kept = min(last.compute, 16 * n_ub * n_embd)
    return replace(refined, devices=(*refined.devices[:-1], replace(last, compute=last.compute - kept)))
