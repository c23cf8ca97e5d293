"""Screenshot states of the Hardware page (``tests/tools/screenshots.py``): this machine, a Llama-3.1-8B-shaped
model estimated for it, and the same model on a described GPU."""

from __future__ import annotations

from typing import Any

from core.estimate.fitting import read_target
from core.hardware import GpuDevice
from ui.pages.hardware import HardwarePage


def _hardware_page(window: Any) -> HardwarePage:
    window.show_page("hardware")
    page: HardwarePage = window.pages["hardware"]
    return page


def scene_detected(window: Any) -> None:
    """This machine as detected."""
    page = _hardware_page(window)
    page.show_hardware(page.app.hardware())


def scene_estimate(window: Any) -> None:
    """A Llama-3.1-8B-shaped Q4_K model (a sparse header-only file) estimated for this machine at 16k."""
    from core.devkit.modelgen import LLAMA_8B_SHAPE, write_sparse_gguf
    from core.estimate.llama import EngineSettings

    page = _hardware_page(window)
    page.show_hardware(page.app.hardware())
    path = write_sparse_gguf(page.app.paths.cache_dir / "Llama-3.1-8B-Q4_K.gguf", LLAMA_8B_SHAPE)
    page.target.setText(str(path))
    page.panel.set_settings(EngineSettings(context_length=16384))
    page.show_model(read_target(str(path)))


def scene_estimate_gpu(window: Any) -> None:
    """The same model on a described 8 GB GPU at 32k: partial offload (this machine has no GPU)."""
    from dataclasses import replace

    from core.estimate.llama import EngineSettings
    from core.hardware import GIB, EngineSupport

    scene_estimate(window)
    page: HardwarePage = window.pages["hardware"]
    real = page.app.hardware()
    gpu = GpuDevice(
        0,
        "NVIDIA GeForce RTX 4060 (illustration)",
        "nvidia",
        "cuda",
        total_bytes=8 * GIB,
        free_bytes=int(7.4 * GIB),
        bandwidth_gbs=272.0,
        driver_version="550.54",
        cuda_version="12.4",
    )
    described = replace(
        real,
        gpus=(gpu,),
        engines=replace(real.engines, llama_gpu_offload=True)
        if isinstance(real.engines, EngineSupport)
        else real.engines,
        notes=("Illustration: a described 8 GB GPU; this machine has none.",),
    )
    page.show_hardware(described)
    page.panel.set_settings(EngineSettings(context_length=32768))
