"""Hardware detection: the real path on this machine (no GPU), and fakes only at the seams that cannot run here
(NVML without an NVIDIA driver, an AMD/Intel sysfs tree, Apple's sysctl)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from core.hardware import (
    GIB,
    EngineSupport,
    cpu_family,
    detect_apple,
    detect_hardware,
    detect_nvidia,
    detect_sysfs_gpus,
    metal_budget,
)


class FakeNVML:
    """Stands in for ``pynvml`` on a machine with two NVIDIA GPUs (honestly a fake: no driver runs here)."""

    NVML_CLOCK_MEM = 2

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shut_down = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.14"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3060"][h]

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(total=[24 * GIB, 12 * GIB][h], free=[20 * GIB, 11 * GIB][h], used=0)

    def nvmlDeviceGetMaxClockInfo(self, h: int, kind: int) -> int:
        assert kind == self.NVML_CLOCK_MEM
        return [10501, 7501][h]

    def nvmlDeviceGetMemoryBusWidth(self, h: int) -> int:
        if h == 1:
            raise RuntimeError("Not Supported")
        return 384

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return (8, 9)


def test_nvidia_through_nvml() -> None:
    nvml = FakeNVML()
    gpus = detect_nvidia(nvml)
    assert [g.device_name for g in gpus] == ["CUDA0", "CUDA1"]
    first, second = gpus
    assert first.name == "NVIDIA GeForce RTX 4090" and first.total_bytes == 24 * GIB
    assert first.free_bytes == 20 * GIB and first.budget_bytes == 20 * GIB
    assert round(first.bandwidth_gbs or 0) == 1008  # 10501 MHz x 384 bit, DDR
    assert first.driver_version == "550.54.14" and first.cuda_version == "12.4"
    assert first.compute_capability == "8.9"
    assert second.bandwidth_gbs is None  # bus width not reported: unknown, not invented
    assert nvml.shut_down
    assert detect_nvidia(FakeNVML(fail_init=True)) == []


def _card(root: Path, name: str, files: dict[str, str]) -> None:
    device = root / "class" / "drm" / name / "device"
    device.mkdir(parents=True)
    for key, value in files.items():
        (device / key).write_text(value + "\n")


def test_amd_and_intel_from_sysfs(tmp_path: Path) -> None:
    _card(
        tmp_path,
        "card0",
        {
            "vendor": "0x1002",
            "mem_info_vram_total": str(16 * GIB),
            "mem_info_vram_used": str(1 * GIB),
            "product_name": "Radeon RX 7800 XT",
        },
    )
    _card(
        tmp_path,
        "card1",
        {
            "vendor": "0x1002",
            "mem_info_vram_total": str(512 * 2**20),
            "mem_info_vram_used": "0",
            "mem_info_gtt_total": str(8 * GIB),
            "mem_info_gtt_used": str(1 * GIB),
        },
    )
    _card(tmp_path, "card2", {"vendor": "0x8086", "device": "0x46a6"})
    _card(tmp_path, "card0-HDMI-A-1", {"vendor": "0x1002"})  # a connector, not a device
    (tmp_path / "module" / "amdgpu").mkdir(parents=True)
    (tmp_path / "module" / "amdgpu" / "version").write_text("6.7.0\n")
    gpus = detect_sysfs_gpus(tmp_path)
    assert [g.device_name for g in gpus] == ["ROCm0", "ROCm1", "SYCL0"]
    dgpu, apu, intel = gpus
    assert dgpu.name == "AMD Radeon RX 7800 XT" and dgpu.free_bytes == 15 * GIB and not dgpu.unified_memory
    assert dgpu.driver_version == "6.7.0"
    assert apu.unified_memory and apu.budget_bytes == 512 * 2**20 + 7 * GIB  # VRAM carve-out + free GTT
    assert intel.vendor == "intel" and intel.total_bytes == 0 and intel.unified_memory
    assert detect_sysfs_gpus(tmp_path / "nothing") == []


def test_apple_metal_budget() -> None:
    values = {"hw.memsize": str(16 * GIB), "machdep.cpu.brand_string": "Apple M2 Pro", "iogpu.wired_limit_mb": "0"}
    (gpu,) = detect_apple(values.get)
    assert gpu.api == "metal" and gpu.unified_memory and gpu.bandwidth_gbs == 200
    assert gpu.budget_bytes == 16 * GIB * 2 // 3
    values["iogpu.wired_limit_mb"] = "14000"
    assert detect_apple(values.get)[0].budget_bytes == 14000 * 2**20
    (probed,) = detect_apple(values.get, EngineSupport(mlx_gpu=True, metal_budget_bytes=11 * GIB))
    assert probed.budget_bytes == 11 * GIB  # what Metal itself says wins
    assert metal_budget(64 * GIB, None) == 48 * GIB
    assert detect_apple(lambda name: None) == []


def test_cpu_family() -> None:
    assert cpu_family("arm64") == "arm"
    assert cpu_family("x86_64", llama_info="CPU : AVX = 1 | AVX2 = 1 |") == "x86_avx2"
    assert cpu_family("x86_64", cpuinfo="flags : sse sse2 avx", llama_info=None) == "none"


def test_failing_or_hanging_probe_is_reported_not_fatal() -> None:
    def broken() -> EngineSupport:
        raise OSError("libllama.so: cannot open shared object file")

    hardware = detect_hardware(broken)
    assert hardware.engines == EngineSupport()
    assert any("libllama" in note for note in hardware.notes)
    release = threading.Event()

    def stuck() -> EngineSupport:
        release.wait()
        return EngineSupport(llama_installed=True)

    try:
        hardware = detect_hardware(stuck, timeout=0.2)
    finally:
        release.set()
    assert hardware.engines == EngineSupport()
    assert any("no answer" in note for note in hardware.notes)
