"""``hangar hw``: this machine's GPUs, memory and which engines can use them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def run(app: AppContext, args: argparse.Namespace) -> int:
    hardware = app.hardware()
    if args.json:
        emit_json(hardware.as_dict())
        return 0
    print(f"System   {hardware.os} ({hardware.machine})")
    print(f"CPU      {hardware.cpu_name}: {hardware.cpu_cores} cores, {hardware.cpu_threads} threads")
    print(f"RAM      {_gib(hardware.ram_total_bytes)} total, {_gib(hardware.ram_available_bytes)} available")
    if not hardware.gpus:
        print("GPU      none found")
    for gpu in hardware.gpus:
        bandwidth = f", {gpu.bandwidth_gbs:.0f} GB/s" if gpu.bandwidth_gbs else ""
        free = f", {_gib(gpu.free_bytes)} free" if gpu.free_bytes is not None else ""
        print(
            f"{gpu.device_name:<8} {gpu.name}: {_gib(gpu.total_bytes)}{free}{bandwidth}, "
            f"usable {_gib(gpu.budget_bytes)}"
        )
    for engine, support in hardware.engines.summary.items():
        print(f"{engine:<8} {support}")
    for note in hardware.notes:
        print(f"note     {note}")
    return 0
