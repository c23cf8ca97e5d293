"""Asks the installed engines what they can do on this machine (core may not import them); llama.cpp's detailed
facts (extra buffer types, devices) come from ``backends.facts``.

``main.py`` hands ``probe_engines`` to the ``AppContext``; ``core.hardware.detect_hardware`` calls it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from core.hardware import EngineSupport

logger = logging.getLogger(__name__)


def gpu_devices() -> list[str]:
    """The GPU devices (discrete or integrated) llama.cpp's ggml sees on this machine, by name (RPC workers aside)."""
    from backends.ggml import DEVICE_GPU, DEVICE_IGPU, devices

    return [name for name, kind in devices() if kind in (DEVICE_GPU, DEVICE_IGPU) and not name.startswith("RPC")]


def probe_engines(cache_dir: Path | None = None) -> EngineSupport:
    """What the engines can do here. With ``cache_dir``, also llama.cpp's own facts about this machine (extra
    buffer types and what they take, devices), measured once per llama.cpp build and CPU in a child process."""
    llama_installed = importlib.util.find_spec("llama_cpp") is not None
    offload = False
    system_info = None
    if llama_installed:
        try:
            import llama_cpp

            # llama_supports_gpu_offload() is true for any build with an offload backend compiled in, RPC
            # included; what matters is whether this machine has a GPU device for it.
            offload = bool(llama_cpp.llama_supports_gpu_offload()) and bool(gpu_devices())
            system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
        except Exception as exc:  # a broken native build: report it as CPU-less rather than crash the app
            logger.warning("llama.cpp probe failed: %s", exc)
    facts = None
    if llama_installed and cache_dir is not None:
        from backends.facts import engine_facts

        facts = engine_facts(cache_dir)
    mlx_installed = importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None
    mlx_gpu = False
    budget = None
    if importlib.util.find_spec("mlx") is not None:
        try:
            import mlx.core as mx

            mlx_gpu = bool(mx.metal.is_available())
            if mlx_gpu:
                info = mx.device_info()
                value = info.get("max_recommended_working_set_size")
                budget = int(value) if value else None
        except Exception as exc:
            logger.warning("MLX probe failed: %s", exc)
    return EngineSupport(
        llama_installed=llama_installed,
        llama_gpu_offload=offload,
        llama_system_info=system_info,
        mlx_installed=mlx_installed,
        mlx_gpu=mlx_gpu,
        metal_budget_bytes=budget,
        facts=facts,
    )
