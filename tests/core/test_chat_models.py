"""Which engine runs a path, load options from settings, GPU layers "auto" from the estimator, and the real
allocation shown next to the estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.worker import serve
from core.chat.models import (
    AUTO_GPU_LAYERS,
    auto_gpu_layers,
    engine_for,
    estimate_load,
    load_options,
    memory_lines,
    resolve_model,
    spec_for,
)
from core.engine.host import EngineHost
from core.engine.protocol import LoadOptions
from core.errors import ModelFileError, NotFoundError, UsageError
from core.hardware import EngineSupport, GpuDevice, Hardware
from core.settings import Settings

GIB = 1024**3


def _hardware(gpu_bytes: int) -> Hardware:
    """A machine with one CUDA GPU: a fake at the seam that cannot run here (no GPU on the test machine)."""
    gpu = GpuDevice(0, "Fake RTX", "nvidia", "cuda", total_bytes=gpu_bytes, free_bytes=gpu_bytes)
    return Hardware(
        os="Linux",
        machine="x86_64",
        cpu_name="cpu",
        cpu_cores=4,
        cpu_threads=8,
        cpu_family="x86_avx2",
        ram_total_bytes=32 * GIB,
        ram_available_bytes=16 * GIB,
        ram_bandwidth_gbs=None,
        gpus=(gpu,),
        engines=EngineSupport(llama_installed=True, llama_gpu_offload=True),
    )


def test_engine_from_path(tiny_gguf: Path, tiny_hf_model: Path, tmp_path: Path) -> None:
    assert engine_for(tiny_gguf) == "llama"
    assert engine_for(tiny_hf_model) == "mlx"
    assert engine_for(tiny_gguf.parent) == "llama"  # a folder holding one GGUF
    resolved = resolve_model(str(tiny_gguf.parent))
    assert resolved.path == tiny_gguf.resolve() and resolved.engine == "llama"
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelFileError, match="not a model"):
        engine_for(tmp_path / "notes.txt")
    with pytest.raises(ModelFileError, match="neither"):
        engine_for(tmp_path)
    with pytest.raises(NotFoundError, match="No model at"):
        resolve_model(str(tmp_path / "nothing.gguf"))
    with pytest.raises(UsageError):
        resolve_model(" ")


def test_load_options_follow_settings() -> None:
    options = load_options(Settings(default_context_length=2048))
    assert options.gpu_layers == AUTO_GPU_LAYERS and options.context_length == 2048
    assert load_options(Settings(gpu_layers="12"), context_length=512).gpu_layers == 12
    assert load_options(Settings(), gpu_layers=-1).gpu_layers == -1
    with pytest.raises(UsageError, match="GPU layers"):
        load_options(Settings(), gpu_layers="many")


def test_auto_gpu_layers(tiny_gguf: Path) -> None:
    auto = LoadOptions(context_length=1024, gpu_layers=AUTO_GPU_LAYERS)
    assert auto_gpu_layers(tiny_gguf, auto, None, gpu_offload=False) == 0  # CPU-only build
    assert auto_gpu_layers(tiny_gguf, auto, _hardware(24 * GIB), gpu_offload=True) == 3  # 2 blocks + output
    # a GPU smaller than the driver overhead plus margin takes nothing
    assert auto_gpu_layers(tiny_gguf, auto, _hardware(512 * 1024**2), gpu_offload=True) == 0
    pinned = LoadOptions(gpu_layers=7)
    assert auto_gpu_layers(tiny_gguf, pinned, _hardware(24 * GIB), gpu_offload=True) == 7


def test_real_allocation_next_to_the_estimate(tiny_gguf: Path) -> None:
    host = EngineHost(serve, name="test-chat-models")
    try:
        options = LoadOptions(context_length=1024, gpu_layers=AUTO_GPU_LAYERS)
        info = host.load_blocking(spec_for(resolve_model(str(tiny_gguf)), options))
    finally:
        host.shutdown()
    assert info.device == "cpu"  # auto on this CPU-only build
    estimate = estimate_load(tiny_gguf, options, None, gpu_layers=0)
    assert estimate is not None
    lines = memory_lines(info, estimate)
    kv_line = next(line for line in lines if line.startswith("KV cache"))
    assert "estimated" in kv_line
    assert lines[-1].startswith("Total allocated:")
    # without an estimate the real figures still show
    assert memory_lines(info, None)[0].startswith("Weights:")
