"""What this machine's history teaches the estimator: every load records estimate vs actual
(``core.estimate.records``), every chat reply and every Workshop speed run its decode speed. ``apply_history`` corrects
a new estimate with them; ``estimate_accuracy`` says how accurate the last estimates were (the Hardware page).
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.estimate.llama import SOURCE_ANALYTIC, EngineSettings, Estimate, Verdict, estimate_llama
from core.estimate.records import COMPONENTS, FitRecord, load_history, migrate
from core.estimate.speed import (
    Confidence,
    SpeedSample,
    bench_speeds,
    calibrated,
    hardware_fingerprint,
    measured_speeds,
    prediction,
    same_model,
)

if TYPE_CHECKING:
    from core.hardware import Hardware
    from core.store import Store

logger = logging.getLogger(__name__)

#: Corrections need this many earlier loads, and are ignored when smaller than this (the model is already right).
MIN_RECORDS = 2
MIN_CORRECTION = 0.01
#: Other models' speeds used to calibrate a prediction (each costs one header read).
MAX_SPEED_MODELS = 8


@dataclass(frozen=True)
class Accuracy:
    """How the last estimates compared with what llama.cpp really allocated on this machine."""

    count: int
    mean_abs_error_pct: float
    worst_error_pct: float  # signed: positive means the estimate was too high
    records: tuple[FitRecord, ...] = ()

    @property
    def words(self) -> str:
        if not self.count:
            return "No model has been loaded yet: estimates are not checked on this machine so far."
        devices = sum(1 for r in self.records if r.device)
        part = f", {devices} of them per device of a load over RPC workers" if devices else ""
        return (
            f"The last {self.count} memory estimates{part} were off by {self.mean_abs_error_pct:.1f}% on average "
            f"(worst {self.worst_error_pct:+.1f}%) against what llama.cpp really allocated."
        )


def estimate_accuracy(store: Store, limit: int = 10) -> Accuracy:
    records = tuple(load_history(store, limit=limit))
    if not records:
        return Accuracy(0, 0.0, 0.0)
    errors = [r.error_pct for r in records]
    worst = max(errors, key=abs)
    return Accuracy(len(records), statistics.fmean(abs(e) for e in errors), worst, records)


def memory_correction(store: Store, limit: int = 20) -> dict[str, float]:
    """Per component (weights, kv, compute, output): the median of actual ÷ estimated over the last analytic
    estimates of whole loads on this machine (a split over RPC workers, recorded per device, corrects nothing
    here); only components that are off by more than 1% over at least two loads."""
    migrate(store)
    rows = store.query(
        "SELECT estimated_json, actual_json FROM fit_records WHERE source = ? AND device = '' ORDER BY id DESC LIMIT ?",
        (SOURCE_ANALYTIC, limit),
    )
    from core.estimate.records import actual_components

    ratios: dict[str, list[float]] = {c: [] for c in COMPONENTS}
    for row in rows:
        try:
            estimated = json.loads(row["estimated_json"])
            actual = actual_components(json.loads(row["actual_json"]))
        except (ValueError, TypeError):
            continue
        for component in COMPONENTS:
            if estimated.get(component) and actual.get(component):
                ratios[component].append(actual[component] / estimated[component])
    correction = {}
    for component, values in ratios.items():
        if len(values) >= MIN_RECORDS:
            ratio = statistics.median(values)
            if abs(ratio - 1.0) > MIN_CORRECTION:
                correction[component] = ratio
    return correction


def _corrected_memory(estimate: Estimate, correction: dict[str, float]) -> Estimate:
    if not correction or estimate.source != SOURCE_ANALYTIC:
        return estimate
    devices = []
    for device in estimate.devices:
        weights = correction.get("weights", 1.0)
        devices.append(
            replace(
                device,
                weights=round(device.weights * weights),
                repack=round(device.repack * weights),
                reclaimable=round(device.reclaimable * weights),
                kv=round(device.kv * correction.get("kv", 1.0)),
                compute=round(device.compute * correction.get("compute", 1.0)),
                output=round(device.output * correction.get("output", 1.0)),
            )
        )
    parts = ", ".join(f"{name} {100 * (ratio - 1):+.1f}%" for name, ratio in sorted(correction.items()))
    note = f"Corrected by earlier loads on this machine ({parts})."
    return replace(estimate, devices=tuple(devices), notes=(*estimate.notes, note))


def _speed_ratios(samples: list[SpeedSample], hardware: Hardware | None) -> list[float]:
    """measured ÷ predicted for other models chatted with here (their headers read again)."""
    from core.errors import HangarError
    from core.gguf import read_gguf

    ratios = []
    for sample in samples[:MAX_SPEED_MODELS]:
        path = Path(sample.model)
        if path.suffix.lower() != ".gguf" or not path.is_file():
            continue
        try:
            prior = estimate_llama(read_gguf(path), EngineSettings(), hardware)
        except (HangarError, OSError, ValueError) as error:
            logger.debug("no speed prior for %s: %s", path, error)
            continue
        if prior.tokens_per_second:
            ratios.append(sample.tokens_per_second / prior.tokens_per_second)
    return ratios


def apply_history(estimate: Estimate, store: Store, model_path: str | None, hardware: Hardware | None) -> Estimate:
    """The estimate corrected by this machine's records: memory by earlier loads' errors, speed by the decode
    speeds chats and Workshop speed runs measured here (this model's own if it has any, its chats before its speed
    runs; else other models' as a correction factor)."""
    estimate = _corrected_memory(estimate, memory_correction(store))
    speeds = measured_speeds(store)
    if hardware is not None:  # a speed run counts where no chat measured the model
        for model, sample in bench_speeds(store, hardware_fingerprint(hardware.as_dict())).items():
            if not any(same_model(model, m) for m in speeds):
                speeds[model] = sample
    own = next((s for m, s in speeds.items() if model_path and same_model(m, model_path)), None)
    others = [s for m, s in speeds.items() if not (model_path and same_model(m, model_path))]
    if own is None and not others:
        return estimate
    gpu = estimate.gpu_layers != 0 and estimate.verdict is not Verdict.CPU_ONLY
    speed = None
    if own is not None:
        speed = prediction(own.tokens_per_second, gpu, Confidence.MEASURED, own.basis)
    elif estimate.speed is not None and estimate.speed.confidence in (Confidence.PROBED, Confidence.ROUGH):
        ratios = _speed_ratios(others, hardware)
        if ratios:
            speed = calibrated(estimate.speed.tokens_per_second, gpu, ratios)
    if speed is None:
        return estimate
    return replace(estimate, speed=speed, tokens_per_second=speed.tokens_per_second)


__all__ = ["Accuracy", "apply_history", "estimate_accuracy", "memory_correction"]
