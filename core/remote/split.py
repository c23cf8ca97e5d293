"""Plan a model spread over RPC workers: each worker's devices become offload devices of the estimate (llama.cpp
puts RPC devices first and splits layers by their free memory), so the estimator gives the per-device breakdown,
the split and the verdict, named as llama.cpp names the buffers (``RPC0[host:port]``) so that the actual allocation
after a load can be put next to it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from core.hardware import GpuDevice, Hardware
from core.remote.rpc import WorkerInfo

if TYPE_CHECKING:
    from core.estimate.llama import Estimate


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
