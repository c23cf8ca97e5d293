"""Decode speed predicted from this machine: the bytes a token reads over the memory bandwidth measured here
(``core.hardware.host_bandwidth``), plus a per-token cost for the engine's own work, then corrected by the decode
speeds Hangar's chats really measured (``measured_speeds``) and the Workshop's speed runs on this machine
(``bench_speeds``). Every prediction says how sure it is and is capped and rounded to what is plausible (never
"about 37,235 tokens/s").
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.store import Store

logger = logging.getLogger(__name__)

#: Achieved fraction of the measured copy bandwidth during decode (llama.cpp: 0.6-0.85 on GPUs, lower on CPUs).
GPU_EFFICIENCY = 0.7
CPU_EFFICIENCY = 0.6
#: When nothing was measured: a dual-channel desktop. The prediction then says it is rough.
DEFAULT_HOST_BANDWIDTH_GBS = 20.0
#: The engine's own work per token that does not scale with the weights (graph build, sampling, the Python loop).
#: (Measured with Hangar's engine: a 2-layer model of 0.3 MiB decodes about 6,000 tokens/s on two CPU cores.)
TOKEN_OVERHEAD_S = 0.00012
LAYER_OVERHEAD_S = 0.00002
#: A prediction (not a measurement) faster than this is not believable for one sequence on a CPU (or a GPU).
MAX_CPU_TPS = 5000.0
MAX_GPU_TPS = 10000.0
#: A chat reply shorter than this says little about decode speed.
MIN_TOKENS = 8


class Confidence:
    MEASURED = "measured"  # this model's own chats on this machine
    CALIBRATED = "calibrated"  # bandwidth measured here, corrected by other models' chats here
    PROBED = "probed"  # bandwidth measured here, no chats yet
    ROUGH = "rough"  # nothing measured: a typical machine assumed


_SPREAD = {
    Confidence.MEASURED: (0.85, 1.15),
    Confidence.CALIBRATED: (0.7, 1.3),
    Confidence.PROBED: (0.5, 1.5),
    Confidence.ROUGH: (0.33, 2.0),
}


@dataclass(frozen=True)
class SpeedPrediction:
    tokens_per_second: float  # rounded, capped
    low: float
    high: float
    confidence: str
    basis: str  # in words: what the number comes from

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens_per_second": self.tokens_per_second,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "basis": self.basis,
        }

    @property
    def words(self) -> str:
        return f"about {format_speed(self.tokens_per_second)} tokens/s ({self.confidence})"


@dataclass(frozen=True)
class SpeedSample:
    """A model's decode speed measured here: the median of its chat replies, or a Workshop speed run."""

    model: str  # the model's path, as chats and the Workshop store it
    tokens_per_second: float
    replies: int  # chat replies (0 for a speed run)
    bench_tokens: int = 0  # a Workshop speed run: the tokens it generated per test (tg128: 128)

    @property
    def basis(self) -> str:
        if self.bench_tokens and not self.replies:
            return f"a Workshop speed run here (tg{self.bench_tokens})"
        return f"{self.replies} chat replies here"


def round_speed(value: float) -> float:
    """Two significant figures: 3.14 → 3.1, 93.6 → 94, 1234 → 1200."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    digits = 1 - math.floor(math.log10(value))
    return float(round(value, digits))


def format_speed(value: float) -> str:
    rounded = round_speed(value)
    return f"{rounded:,.1f}" if rounded < 10 else f"{rounded:,.0f}"


def seconds_per_token(cpu_bytes: float, gpu_bytes: float, n_layer: int, host_gbs: float, gpu_gbs: float) -> float:
    seconds = TOKEN_OVERHEAD_S + LAYER_OVERHEAD_S * n_layer
    seconds += cpu_bytes / (CPU_EFFICIENCY * host_gbs * 1e9)
    if gpu_bytes:
        seconds += gpu_bytes / (GPU_EFFICIENCY * gpu_gbs * 1e9)
    return seconds


def predict(
    cpu_bytes: float,
    gpu_bytes: float,
    n_layer: int,
    *,
    host_gbs: float | None,
    gpu_gbs: float | None,
    own: SpeedSample | None = None,
    ratios: Sequence[float] = (),
    engine_gbs: float | None = None,
) -> SpeedPrediction | None:
    """The prediction for one load. ``own``: this model's measured speed here; ``ratios``: measured ÷ predicted
    for other models on this machine; ``engine_gbs``: the weight bytes per second llama.cpp's own CPU decode
    read here (``EngineFacts.decode_gbs``), preferred to the copy bandwidth. None when a GPU's bandwidth is
    unknown and nothing was measured."""
    gpu = bool(gpu_bytes)
    if own is not None and (own.replies > 0 or own.bench_tokens > 0):
        return prediction(own.tokens_per_second, gpu, Confidence.MEASURED, own.basis)
    if gpu_bytes and not gpu_gbs:
        return None
    if engine_gbs:
        host_gbs = engine_gbs / CPU_EFFICIENCY  # already what the engine achieves: no efficiency on top
    model = 1.0 / seconds_per_token(cpu_bytes, gpu_bytes, n_layer, host_gbs or DEFAULT_HOST_BANDWIDTH_GBS, gpu_gbs or 1)
    if ratios:
        return calibrated(model, gpu, ratios)
    if engine_gbs and cpu_bytes >= gpu_bytes:
        return prediction(model, gpu, Confidence.PROBED, f"llama.cpp's own decode here ({engine_gbs:.1f} GB/s)")
    if host_gbs:
        return prediction(model, gpu, Confidence.PROBED, f"{host_gbs:.0f} GB/s memory bandwidth measured here")
    return prediction(model, gpu, Confidence.ROUGH, "a typical machine's memory bandwidth (not measured here)")


def calibrated(value: float, gpu: bool, ratios: Sequence[float]) -> SpeedPrediction:
    """``value`` corrected by the median of measured ÷ predicted over other models on this machine."""
    factor = statistics.median(ratios)
    words = f"corrected by {len(ratios)} other models' measured speeds here (chats, speed runs)"
    return prediction(value * factor, gpu, Confidence.CALIBRATED, words)


def prediction(value: float, gpu: bool, confidence: str, basis: str) -> SpeedPrediction:
    """A prediction with its range, rounded to two significant figures; a modelled one is capped at what is
    plausible (a measured speed is what it is)."""
    cap = float("inf") if confidence == Confidence.MEASURED else MAX_GPU_TPS if gpu else MAX_CPU_TPS
    low, high = _SPREAD[confidence]
    value = min(value, cap)
    return SpeedPrediction(
        round_speed(value), round_speed(value * low), round_speed(min(value * high, cap)), confidence, basis
    )


def measured_speeds(store: Store, min_tokens: int = MIN_TOKENS) -> dict[str, SpeedSample]:
    """Per model (its path): the median decode speed of finished chat replies, from the chat history."""
    try:
        rows = store.query(
            "SELECT c.model AS model, m.tokens_per_second AS tps FROM chat_messages m "
            "JOIN chat_conversations c ON c.id = m.conversation_id "
            "WHERE m.role = 'assistant' AND m.tokens_per_second > 0 AND m.completion_tokens >= ? "
            "ORDER BY m.id DESC LIMIT 2000",
            (min_tokens,),
        )
    except sqlite3.Error as error:  # no chats yet: the tables do not exist
        logger.debug("no chat speeds: %s", error)
        return {}
    by_model: dict[str, list[float]] = {}
    for row in rows:
        if row["model"]:
            by_model.setdefault(str(row["model"]), []).append(float(row["tps"]))
    return {m: SpeedSample(m, statistics.median(v[:20]), len(v)) for m, v in by_model.items()}


def hardware_fingerprint(hardware: dict[str, Any]) -> str:
    """A stable id of the machine a speed was measured on: CPU, threads, memory size, GPUs (not free memory)."""
    gpus = [(g.get("name"), g.get("memory_total_bytes") or g.get("total_bytes")) for g in hardware.get("gpus", [])]
    key = (hardware.get("cpu_name"), hardware.get("cpu_threads"), hardware.get("ram_total_bytes"), gpus)
    return hashlib.sha256(repr(key).encode()).hexdigest()[:12]


def bench_speeds(store: Store, hardware_id: str) -> dict[str, SpeedSample]:
    """Per model (its path): the generation speed of its newest Workshop speed run on this machine, at an empty
    context (the Workshop's ``workshop_speed`` table, read by SQL: the Workshop sits above the estimator)."""
    try:
        rows = store.query(
            "SELECT model_path, n_gen, tg_tokens_per_second AS tps FROM workshop_speed "
            "WHERE hardware_id = ? AND depth = 0 AND tg_tokens_per_second > 0 ORDER BY at DESC, id DESC LIMIT 2000",
            (hardware_id,),
        )
    except sqlite3.Error as error:  # no speed runs yet: the table does not exist
        logger.debug("no speed runs: %s", error)
        return {}
    newest: dict[str, SpeedSample] = {}
    for row in rows:
        model = str(row["model_path"])
        if model not in newest:
            newest[model] = SpeedSample(model, float(row["tps"]), 0, int(row["n_gen"]))
    return newest


def same_model(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


__all__ = [
    "Confidence",
    "SpeedPrediction",
    "SpeedSample",
    "bench_speeds",
    "calibrated",
    "format_speed",
    "hardware_fingerprint",
    "measured_speeds",
    "predict",
    "prediction",
    "round_speed",
]
