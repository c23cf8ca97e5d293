"""What this machine has for running models: GPUs (NVIDIA, AMD, Intel, Apple), RAM, CPU, and which engines can
use which device.

Each detector is a seam: NVML is passed in as a module (tests hand in a fake), sysfs as a root folder (tests
build a fake tree), Apple's ``sysctl`` as a function. Detection never raises and never hangs: a missing driver
or library, an error or a timeout all mean "not present", with a note saying why.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

GIB = 1024**3
DETECT_TIMEOUT = 5.0  # seconds per detector; NVML on a wedged driver can block for minutes
#: The engine probe measures llama.cpp's facts in a child process the first time (a few seconds; cached after).
ENGINE_PROBE_TIMEOUT = 90.0
T = TypeVar("T")

#: Peak memory bandwidth (GB/s) of Apple chips, from Apple's specifications.
APPLE_BANDWIDTH = {
    "M1": 68.25,
    "M1 Pro": 200,
    "M1 Max": 400,
    "M1 Ultra": 800,
    "M2": 100,
    "M2 Pro": 200,
    "M2 Max": 400,
    "M2 Ultra": 800,
    "M3": 100,
    "M3 Pro": 150,
    "M3 Max": 400,
    "M3 Ultra": 819,
    "M4": 120,
    "M4 Pro": 273,
    "M4 Max": 546,
    "M5": 153,
}


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    vendor: str  # "nvidia" | "amd" | "intel" | "apple"
    api: str  # how llama.cpp would reach it: "cuda" | "rocm" | "metal" | "vulkan" | "sycl"
    total_bytes: int
    free_bytes: int | None = None
    bandwidth_gbs: float | None = None
    unified_memory: bool = False  # shares system RAM (Apple, APUs, iGPUs)
    driver_version: str | None = None
    cuda_version: str | None = None
    compute_capability: str | None = None
    #: Apple: the Metal working-set budget (recommendedMaxWorkingSetSize); AMD APUs: VRAM + GTT.
    budget_override: int | None = None

    @property
    def device_name(self) -> str:
        prefix = {"cuda": "CUDA", "rocm": "ROCm", "metal": "MTL", "vulkan": "Vulkan", "sycl": "SYCL"}
        return f"{prefix.get(self.api, self.api.upper())}{self.index}"

    @property
    def budget_bytes(self) -> int:
        """What a model may use on this device: Metal's budget, else free memory, else total."""
        if self.budget_override is not None:
            return self.budget_override
        return self.free_bytes if self.free_bytes is not None else self.total_bytes


@dataclass(frozen=True)
class ExtraBuffer:
    """One extra buffer type of the CPU backend and the tensor types it took in the probe.

    ``types`` maps a ggml type name (``Q4_K``) to the bytes this buffer held per byte of such matrices in the file
    (1.0 when the re-laid-out copy is as large as the original)."""

    name: str
    types: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceFact:
    """A ggml device as llama.cpp sees it (``CPU``, ``CUDA0``, ``MTL0``, ``RPC[...]``)."""

    name: str
    kind: str  # "cpu" | "gpu" | "igpu" | "accel"
    description: str = ""
    free_bytes: int = 0
    total_bytes: int = 0


@dataclass(frozen=True)
class EngineFacts:
    llama_version: str
    cpu_key: str  # what the facts depend on: CPU model and the features llama.cpp reports
    extra_buffers: tuple[ExtraBuffer, ...] = ()
    devices: tuple[DeviceFact, ...] = ()
    probed_types: tuple[str, ...] = ()
    probed_at: float = 0.0
    #: The weight bytes per second llama.cpp's CPU decode really read in the probe (GB/s, the engine's own
    #: threads and kernels on a Q4_K model); 0 when not measured. Two probes: a small model (``decode_bytes`` a
    #: token, mostly in the CPU's caches) and a large one (``decode_bytes_large``, beyond them: memory decides).
    decode_gbs: float = 0.0
    decode_bytes: float = 0.0
    decode_gbs_large: float = 0.0
    decode_bytes_large: float = 0.0
    #: The probe's decode crashed inside llama.cpp with the extra buffer types on and ran with them off (AMX on
    #: some Xeons): the engine then loads every model with them off, and estimates count no repacked copies.
    extra_buffers_crash: bool = False

    def decode_gbs_for(self, bytes_per_token: float) -> float:
        """The engine's decode rate (GB/s) for a model reading ``bytes_per_token``: the small probe's up to its
        size, the large probe's from its size on, interpolated (log scale) between; 0 when not measured."""
        small, large = self.decode_bytes, self.decode_bytes_large
        if not (self.decode_gbs_large and small and large > small) or bytes_per_token <= small:
            return self.decode_gbs
        if bytes_per_token >= large or not self.decode_gbs:
            return self.decode_gbs_large
        share = math.log(bytes_per_token / small) / math.log(large / small)
        return self.decode_gbs * (self.decode_gbs_large / self.decode_gbs) ** share

    def repack(self, type_name: str) -> tuple[str, float] | None:
        """(buffer name, size ratio) of the extra buffer that takes matrices of ``type_name``, if any."""
        for buffer in self.extra_buffers:
            ratio = buffer.types.get(type_name.upper())
            if ratio:
                return buffer.name, ratio
        return None

    @property
    def repack_types(self) -> frozenset[str]:
        return frozenset(t for b in self.extra_buffers for t in b.types)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineFacts:
        return cls(
            llama_version=str(data["llama_version"]),
            cpu_key=str(data["cpu_key"]),
            extra_buffers=tuple(
                ExtraBuffer(str(b["name"]), {str(k): float(v) for k, v in dict(b.get("types", {})).items()})
                for b in data.get("extra_buffers", ())
            ),
            devices=tuple(DeviceFact(**d) for d in data.get("devices", ())),
            probed_types=tuple(str(t) for t in data.get("probed_types", ())),
            probed_at=float(data.get("probed_at", 0.0)),
            decode_gbs=float(data.get("decode_gbs", 0.0)),
            decode_bytes=float(data.get("decode_bytes", 0.0)),
            decode_gbs_large=float(data.get("decode_gbs_large", 0.0)),
            decode_bytes_large=float(data.get("decode_bytes_large", 0.0)),
            extra_buffers_crash=bool(data.get("extra_buffers_crash", False)),
        )


@dataclass(frozen=True)
class EngineSupport:
    """What the installed engines can do here (asked of the engines themselves by ``backends.probe``)."""

    llama_installed: bool = False
    llama_gpu_offload: bool = False
    llama_system_info: str | None = None
    mlx_installed: bool = False
    mlx_gpu: bool = False  # MLX runs on the Metal GPU (Apple Silicon); otherwise on the CPU
    metal_budget_bytes: int | None = None  # mx.device_info()["max_recommended_working_set_size"]
    #: What llama.cpp reported about this machine (extra buffer types, devices); None when it was not asked.
    facts: EngineFacts | None = None

    @property
    def summary(self) -> dict[str, str]:
        llama = "not installed"
        if self.llama_installed:
            llama = "GPU offload" if self.llama_gpu_offload else "CPU only"
        mlx = "not installed"
        if self.mlx_installed:
            mlx = "Metal GPU" if self.mlx_gpu else "CPU"
        return {"llama.cpp": llama, "MLX": mlx}


@dataclass(frozen=True)
class Hardware:
    os: str
    machine: str
    cpu_name: str
    cpu_cores: int
    cpu_threads: int
    cpu_family: str  # "x86_avx2" | "arm" | "none": which quantized matrices llama.cpp's CPU backend repacks
    ram_total_bytes: int
    ram_available_bytes: int
    ram_bandwidth_gbs: float | None
    gpus: tuple[GpuDevice, ...] = ()
    engines: EngineSupport = field(default_factory=EngineSupport)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = [{**asdict(g), "device": g.device_name, "budget_bytes": g.budget_bytes} for g in self.gpus]
        data["engines"] = {**asdict(self.engines), "summary": self.engines.summary}
        return data


def _with_timeout(fn: Callable[[], T], default: T, what: str, notes: list[str], timeout: float = DETECT_TIMEOUT) -> T:
    """Run a detector in a daemon thread; on error or timeout return ``default`` and note why."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:  # a detector must never take the app down
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"detect-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        notes.append(f"{what}: no answer within {timeout:.0f} s; treated as absent.")
        return default
    if "error" in box:
        logger.info("%s detection failed: %s", what, box["error"])
        notes.append(f"{what}: {box['error']}")
        return default
    return box.get("value", default)


# -- NVIDIA --------------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def detect_nvidia(nvml: Any = None) -> list[GpuDevice]:
    """NVIDIA GPUs through NVML (``pynvml`` from nvidia-ml-py). No library or no driver: an empty list."""
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            return []
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded: no NVIDIA GPU here
        logger.debug("NVML unavailable: %s", exc)
        return []
    devices: list[GpuDevice] = []
    try:
        driver = _optional(lambda: _text(nvml.nvmlSystemGetDriverVersion()))
        cuda_raw = _optional(lambda: int(nvml.nvmlSystemGetCudaDriverVersion_v2()))
        cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if cuda_raw else None
        for i in range(int(nvml.nvmlDeviceGetCount())):
            devices.append(_nvidia_device(nvml, i, driver, cuda))
    finally:
        _optional(nvml.nvmlShutdown)
    return devices


def _nvidia_device(nvml: Any, i: int, driver: str | None, cuda: str | None) -> GpuDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(i)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)

    def clock() -> int:
        return int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM))

    def bus() -> int:
        return int(nvml.nvmlDeviceGetMemoryBusWidth(handle))

    def capability() -> tuple[int, int]:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        return int(major), int(minor)

    mem_clock, bus_width, cc = _optional(clock), _optional(bus), _optional(capability)
    # DDR: two transfers per clock; MHz x bits / 8 -> MB/s
    bandwidth = 2 * mem_clock * bus_width / 8 / 1000 if mem_clock and bus_width else None
    return GpuDevice(
        index=i,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        vendor="nvidia",
        api="cuda",
        total_bytes=int(memory.total),
        free_bytes=int(memory.free),
        bandwidth_gbs=bandwidth,
        driver_version=driver,
        cuda_version=cuda,
        compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
    )


def _optional(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:
        return None


# -- AMD and Intel through sysfs -----------------------------------------------------------------------------
def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text, 0) if text is not None else None
    except ValueError:
        return None


def detect_sysfs_gpus(root: Path = Path("/sys")) -> list[GpuDevice]:
    """AMD (amdgpu: VRAM, plus GTT for APUs) and Intel GPUs from ``/sys/class/drm/card*/device``."""
    drm = root / "class" / "drm"
    if not drm.is_dir():
        return []
    devices: list[GpuDevice] = []
    counters = {"amd": 0, "intel": 0}
    for card in sorted(drm.glob("card[0-9]*")):
        if "-" in card.name:  # connectors (card0-HDMI-A-1) are not devices
            continue
        dev = card / "device"
        vendor = _read_int(dev / "vendor")
        name = _read(dev / "product_name") or _read(dev / "device") or card.name
        if vendor == 0x1002:
            vram = _read_int(dev / "mem_info_vram_total") or 0
            used = _read_int(dev / "mem_info_vram_used")
            gtt = _read_int(dev / "mem_info_gtt_total")
            gtt_used = _read_int(dev / "mem_info_gtt_used")
            # An APU has a small VRAM carve-out; llama.cpp's HIP backend adds GTT (system RAM) for it.
            integrated = vram < 2 * GIB and gtt is not None
            free = vram - used if used is not None else None
            budget = None
            if integrated and gtt is not None:
                budget = (free if free is not None else vram) + gtt - (gtt_used or 0)
            devices.append(
                GpuDevice(
                    index=counters["amd"],
                    name=f"AMD {name}" if not name.startswith("AMD") else name,
                    vendor="amd",
                    api="rocm",
                    total_bytes=vram + (gtt or 0 if integrated else 0),
                    free_bytes=free,
                    unified_memory=integrated,
                    budget_override=budget,
                    driver_version=_read(root / "module" / "amdgpu" / "version"),
                )
            )
            counters["amd"] += 1
        elif vendor == 0x8086:
            # i915/xe report little through sysfs: an iGPU shares RAM, a discrete card's size is rarely there.
            lmem = _read_int(dev / "lmem_total_bytes") or _read_int(dev / "mem_info_vram_total") or 0
            devices.append(
                GpuDevice(
                    index=counters["intel"],
                    name=f"Intel GPU {name}",
                    vendor="intel",
                    api="sycl",
                    total_bytes=lmem,
                    unified_memory=lmem == 0,
                )
            )
            counters["intel"] += 1
    return devices


# -- Apple ---------------------------------------------------------------------------------------------------
def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def metal_budget(memsize: int, wired_limit_mb: int | None) -> int:
    """Metal's working-set budget when MLX cannot tell: the ``iogpu.wired_limit_mb`` override if set, else the
    documented default of about 2/3 of RAM up to 36 GB and 3/4 above."""
    if wired_limit_mb:
        return wired_limit_mb * 1024 * 1024
    return memsize * 2 // 3 if memsize <= 36 * GIB else memsize * 3 // 4


def detect_apple(
    sysctl: Callable[[str], str | None] = _sysctl, engines: EngineSupport | None = None
) -> list[GpuDevice]:
    memsize = int(sysctl("hw.memsize") or 0)
    if not memsize:
        return []
    brand = sysctl("machdep.cpu.brand_string") or "Apple Silicon"
    wired = sysctl("iogpu.wired_limit_mb")
    budget = (
        engines.metal_budget_bytes
        if engines and engines.metal_budget_bytes
        else metal_budget(memsize, int(wired) if wired and wired.isdigit() else None)
    )
    chip = brand.removeprefix("Apple ").strip()
    return [
        GpuDevice(
            index=0,
            name=brand,
            vendor="apple",
            api="metal",
            total_bytes=memsize,
            bandwidth_gbs=APPLE_BANDWIDTH.get(chip),
            unified_memory=True,
            budget_override=budget,
        )
    ]


# -- CPU and RAM ---------------------------------------------------------------------------------------------
def _cpu_name(machine: str) -> str:
    cpuinfo = _read(Path("/proc/cpuinfo")) or ""
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or machine


def cpu_family(machine: str, cpuinfo: str | None = None, llama_info: str | None = None) -> str:
    machine = machine.lower()
    if machine in ("arm64", "aarch64") or machine.startswith("arm"):
        return "arm"
    if llama_info is not None:
        return "x86_avx2" if "AVX2 = 1" in llama_info else "none"
    text = cpuinfo if cpuinfo is not None else (_read(Path("/proc/cpuinfo")) or "")
    if " avx2" in text or not text:  # no /proc (macOS/Windows x86): nearly every x86 CPU since 2013 has AVX2
        return "x86_avx2"
    return "none"


BANDWIDTH_FILE = "host-bandwidth.json"


def measure_host_bandwidth(size: int = 64 * 1024 * 1024, repeats: int = 3) -> float:
    """Memory bandwidth in GB/s from the best of a few copies of a buffer much larger than the CPU caches
    (bytes read plus bytes written, as decode reads weights); well under a second."""
    import time

    import numpy as np

    source = np.ones(size // 8)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best / 1e9


def host_bandwidth(
    cache_dir: Path | None, cpu_name: str, measure: Callable[[], float] = measure_host_bandwidth
) -> float:
    """This machine's bandwidth, measured once and cached per CPU in ``cache_dir`` (None: measured, not kept)."""
    import json

    path = cache_dir / BANDWIDTH_FILE if cache_dir is not None else None
    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("cpu") == cpu_name and float(data["gbs"]) > 0:
                return float(data["gbs"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    gbs = measure()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_suffix(f".{os.getpid()}.tmp")
            temp.write_text(json.dumps({"cpu": cpu_name, "gbs": round(gbs, 2)}), encoding="utf-8")
            os.replace(temp, path)
        except OSError as error:
            logger.info("bandwidth not cached: %s", error)
    return gbs


def detect_hardware(
    probe: Callable[[], EngineSupport] | None = None,
    *,
    cache_dir: Path | None = None,
    nvml: Any = None,
    sysfs_root: Path = Path("/sys"),
    sysctl: Callable[[str], str | None] | None = None,
    timeout: float = DETECT_TIMEOUT,
) -> Hardware:
    """Everything Hangar needs to know about this machine. Never raises."""
    import psutil

    notes: list[str] = []
    system = platform.system()
    machine = platform.machine()
    engine_timeout = max(timeout, ENGINE_PROBE_TIMEOUT) if timeout == DETECT_TIMEOUT else timeout
    engines = _with_timeout(probe, EngineSupport(), "engines", notes, engine_timeout) if probe else EngineSupport()
    gpus: list[GpuDevice] = []
    gpus += _with_timeout(lambda: detect_nvidia(nvml), [], "NVIDIA", notes, timeout)
    if system == "Linux" or sysfs_root != Path("/sys"):
        gpus += _with_timeout(lambda: detect_sysfs_gpus(sysfs_root), [], "AMD/Intel", notes, timeout)
    if system == "Darwin" or sysctl is not None:
        gpus += _with_timeout(lambda: detect_apple(sysctl or _sysctl, engines), [], "Apple", notes, timeout)
    memory = psutil.virtual_memory()
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    threads = psutil.cpu_count(logical=True) or cores
    apple = next((g for g in gpus if g.vendor == "apple"), None)
    cpu_name = apple.name if apple else _cpu_name(machine)
    bandwidth = apple.bandwidth_gbs if apple else None
    if bandwidth is None and cache_dir is not None:
        bandwidth = _with_timeout(lambda: host_bandwidth(cache_dir, cpu_name), None, "memory bandwidth", notes, timeout)
    return Hardware(
        os=f"{system} {platform.release()}".strip(),
        machine=machine,
        cpu_name=cpu_name,
        cpu_cores=int(cores),
        cpu_threads=int(threads),
        cpu_family=cpu_family(machine, llama_info=engines.llama_system_info),
        ram_total_bytes=int(memory.total),
        ram_available_bytes=int(memory.available),
        ram_bandwidth_gbs=round(bandwidth, 1) if bandwidth else None,
        gpus=tuple(gpus),
        engines=engines,
        notes=tuple(notes),
    )


_cached: Hardware | None = None
_cache_lock = threading.Lock()


def cached_hardware(probe: Callable[[], EngineSupport] | None = None, *, refresh: bool = False) -> Hardware:
    """``detect_hardware`` once per process (free memory changes; pass ``refresh=True`` to re-read it)."""
    global _cached
    with _cache_lock:
        if _cached is None or refresh:
            _cached = detect_hardware(probe)
        return _cached
