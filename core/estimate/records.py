"""Estimate versus reality: after every real load Hangar stores what llama.cpp allocated next to what the
estimator predicted, so the UI can show both and the error history stays visible.

``compare`` turns ``ModelInfo.allocated`` (llama.cpp's logged ``<kind>:<buffer>`` sizes in bytes) into the
same components the estimator reports; ``record_load`` saves one comparison (the chat feature calls it after
each load). A load spread over RPC workers is recorded per device (the host, each ``RPC0[host:port]``), with
the device as the record's key; ``device_allocation`` puts estimate and actual side by side per device.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.engine.protocol import LoadOptions, ModelInfo, ModelSpec
from core.estimate.llama import EngineSettings, Estimate
from core.store import Store

if TYPE_CHECKING:
    from core.hardware import Hardware

logger = logging.getLogger(__name__)
_MIB = 1024 * 1024

COMPONENTS = ("weights", "kv", "compute", "output")
_KIND_TO_COMPONENT = {"model": "weights", "kv": "kv", "compute": "compute", "output": "output", "rs": "kv"}
#: llama.cpp buffer names that live in host RAM (everything else is a device: CUDA0, ROCm0, MTL0, Vulkan0...)
HOST_BUFFERS = ("CPU", "CPU_Mapped", "CPU_REPACK", "CUDA_Host", "ROCm_Host", "Vulkan_Host", "SYCL_Host")

SQL_V1 = """
CREATE TABLE fit_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    n_ctx INTEGER NOT NULL,
    gpu_layers INTEGER NOT NULL,
    kv_cache_type TEXT NOT NULL,
    flash_attention INTEGER NOT NULL,
    estimated_total INTEGER NOT NULL,
    actual_total INTEGER NOT NULL,
    error_pct REAL NOT NULL,
    estimated_json TEXT NOT NULL,
    actual_json TEXT NOT NULL
);
CREATE INDEX fit_records_model ON fit_records (model, created_at);
"""
#: Which estimator answered ("analytic" or "llama.cpp fit"): only analytic estimates are corrected by records.
SQL_V2 = """
ALTER TABLE fit_records ADD COLUMN source TEXT NOT NULL DEFAULT 'analytic';
"""
#: The device a record is about: empty for a whole load on one machine, else llama.cpp's device name.
SQL_V3 = """
ALTER TABLE fit_records ADD COLUMN device TEXT NOT NULL DEFAULT '';
"""


@dataclass(frozen=True)
class Comparison:
    estimated: dict[str, int]  # component -> bytes (what llama.cpp reports: no overheads)
    actual: dict[str, int]

    @property
    def estimated_total(self) -> int:
        return sum(self.estimated.values())

    @property
    def actual_total(self) -> int:
        return sum(self.actual.values())

    @property
    def error_pct(self) -> float:
        """Signed error of the total in percent (positive: the estimate was too high)."""
        if not self.actual_total:
            return 0.0
        return 100.0 * (self.estimated_total - self.actual_total) / self.actual_total

    def component_error_pct(self, name: str) -> float | None:
        actual = self.actual.get(name, 0)
        if not actual:
            return None
        return 100.0 * (self.estimated.get(name, 0) - actual) / actual


@dataclass(frozen=True)
class FitRecord:
    id: int
    created_at: float
    model: str
    n_ctx: int
    gpu_layers: int
    kv_cache_type: str
    flash_attention: bool
    estimated_total: int
    actual_total: int
    error_pct: float
    device: str = ""


def actual_components(allocated: Mapping[str, int]) -> dict[str, int]:
    """Sum llama.cpp's ``<kind>:<buffer>`` sizes into the estimator's components."""
    totals = dict.fromkeys(COMPONENTS, 0)
    for key, size in allocated.items():
        kind = key.split(":", 1)[0].lower()
        component = _KIND_TO_COMPONENT.get(kind)
        if component:
            totals[component] += int(size)
    return totals


def estimated_components(estimate: Estimate) -> dict[str, int]:
    return {
        "weights": estimate.component("weights") + estimate.component("repack"),
        "kv": estimate.component("kv"),
        "compute": estimate.component("compute"),
        "output": estimate.component("output"),
    }


def compare(estimate: Estimate, allocated: Mapping[str, int]) -> Comparison:
    return Comparison(estimated_components(estimate), actual_components(allocated))


def migrate(store: Store) -> None:
    store.migrate("fit", [SQL_V1, SQL_V2, SQL_V3])


def device_of(buffer: str) -> str:
    """The device a llama.cpp buffer lives on: host buffers (mapped, repacked, pinned: CPU_Mapped, the CPU's
    extra buffer types, CUDA_Host) are the host, "CPU"; devices are numbered (CUDA0) or named RPC0[host:port]."""
    if buffer in HOST_BUFFERS or buffer.startswith("CPU") or buffer.endswith("_Host"):
        return "CPU"
    return buffer if "[" in buffer or buffer[-1:].isdigit() else "CPU"


def split_by_device(allocated: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``<kind>:<buffer>`` sizes grouped by the device each buffer lives on."""
    devices: dict[str, dict[str, int]] = {}
    for key, size in allocated.items():
        _, _, buffer = key.partition(":")
        devices.setdefault(device_of(buffer), {})[key] = int(size)
    return devices


def is_split(estimate: Estimate) -> bool:
    """Whether the estimate spreads the model over RPC workers (recorded per device)."""
    return any(d.device.startswith("RPC") for d in estimate.devices)


def device_allocation(estimate: Estimate | None, allocated: Mapping[str, int]) -> list[dict[str, object]]:
    """Per device: what the estimate said and what llama.cpp allocated (llama.cpp's buffers: weights, KV,
    compute, output), in MiB, with the signed error."""
    actual = {name: sum(sizes.values()) for name, sizes in split_by_device(allocated).items()}
    rows: list[dict[str, object]] = []
    named = [d.device for d in estimate.devices] if estimate is not None else []
    for name in [*named, *(n for n in actual if n not in named)]:
        device = next((d for d in estimate.devices if d.device == name), None) if estimate is not None else None
        guess = device.weights + device.repack + device.kv + device.compute + device.output if device else None
        real = actual.get(name, 0)
        rows.append(
            {
                "device": name,
                "estimate_mib": round(guess / _MIB, 1) if guess is not None else None,
                "actual_mib": round(real / _MIB, 1),
                "error_pct": round(100.0 * (guess - real) / real, 1) + 0.0 if guess is not None and real else None,
            }
        )
    return rows


def record_load(store: Store, estimate: Estimate, allocated: Mapping[str, int]) -> FitRecord:
    """Save one real load next to its estimate; returns the stored record. A load over RPC workers is saved as
    one record per device (the host's is returned)."""
    migrate(store)
    if not is_split(estimate):
        return _insert(store, estimate, compare(estimate, allocated), allocated, "")
    by_device = split_by_device(allocated)
    records = []
    for device in estimate.devices:
        own = by_device.get(device.device, {})
        estimated = {
            "weights": device.weights + device.repack,
            "kv": device.kv,
            "compute": device.compute,
            "output": device.output,
        }
        records.append(_insert(store, estimate, Comparison(estimated, actual_components(own)), own, device.device))
    return records[0]


def _insert(
    store: Store, estimate: Estimate, comparison: Comparison, allocated: Mapping[str, int], device: str
) -> FitRecord:
    now = time.time()
    settings = estimate.settings
    cursor = store.execute(
        "INSERT INTO fit_records (created_at, model, n_ctx, gpu_layers, kv_cache_type, flash_attention, "
        "estimated_total, actual_total, error_pct, estimated_json, actual_json, source, device) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            now,
            estimate.model,
            estimate.n_ctx,
            estimate.gpu_layers,
            settings.kv_cache_type,
            int(settings.flash_attention),
            comparison.estimated_total,
            comparison.actual_total,
            comparison.error_pct,
            json.dumps(comparison.estimated),
            json.dumps(dict(allocated)),
            estimate.source,
            device,
        ),
    )
    if abs(comparison.error_pct) > 3:
        where = f" on {device}" if device else ""
        logger.warning("estimate for %s%s was off by %.1f%%", estimate.model, where, comparison.error_pct)
    return FitRecord(
        int(cursor.lastrowid or 0),
        now,
        estimate.model,
        estimate.n_ctx,
        estimate.gpu_layers,
        settings.kv_cache_type,
        settings.flash_attention,
        comparison.estimated_total,
        comparison.actual_total,
        comparison.error_pct,
        device,
    )


def load_history(store: Store, model: str | None = None, limit: int = 100) -> list[FitRecord]:
    """The most recent comparisons, newest first (of one model if given)."""
    migrate(store)
    where, params = ("WHERE model = ?", (model, limit)) if model else ("", (limit,))
    rows = store.query(
        f"SELECT id, created_at, model, n_ctx, gpu_layers, kv_cache_type, flash_attention, estimated_total, "
        f"actual_total, error_pct, device FROM fit_records {where} ORDER BY created_at DESC, id DESC LIMIT ?",
        params,
    )
    return [
        FitRecord(
            r["id"],
            r["created_at"],
            r["model"],
            r["n_ctx"],
            r["gpu_layers"],
            r["kv_cache_type"],
            bool(r["flash_attention"]),
            r["estimated_total"],
            r["actual_total"],
            r["error_pct"],
            r["device"],
        )
        for r in rows
    ]


def settings_for_load(options: LoadOptions) -> EngineSettings:
    """The estimator settings matching the ``LoadOptions`` a chat or benchmark passes to the llama engine."""
    return EngineSettings(
        context_length=options.context_length,
        gpu_layers=options.gpu_layers,
        kv_cache_type=options.kv_cache_type,
        flash_attention=options.flash_attention,
    )


def record_model_load(
    store: Store, spec: ModelSpec, info: ModelInfo, hardware: Hardware | None = None
) -> FitRecord | None:
    """Call after every real load (``ModelLoaded``): estimate the same load and store it next to what llama.cpp
    reported. Returns None for engines that report no buffers (MLX) or a file that cannot be read any more."""
    if spec.engine != "llama" or not info.allocated:
        return None
    from core.errors import HangarError
    from core.estimate.llama import estimate_llama
    from core.gguf import read_gguf

    try:
        estimate = estimate_llama(read_gguf(spec.path), settings_for_load(spec.options), hardware)
    except HangarError as error:
        logger.info("no estimate recorded for %s: %s", spec.path, error)
        return None
    return record_load(store, estimate, info.allocated)
