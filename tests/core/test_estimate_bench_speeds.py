"""Workshop speed runs (``bench MODEL``) feed the estimator: the model's own run is a measurement of its decode
speed on this machine, other models' runs calibrate the bandwidth model; runs on another machine count for
nothing here, and a chat's measured speed comes before a speed run's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.chat.store import ChatStore, MessageState
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.engine.host import GenerationStats
from core.estimate.calibrate import apply_history
from core.estimate.llama import EngineSettings, estimate_llama
from core.estimate.speed import Confidence, bench_speeds, hardware_fingerprint
from core.gguf import read_gguf
from core.hardware import GIB, EngineSupport, Hardware
from core.store import Store
from core.workshop.records import WorkshopRecords
from core.workshop.types import BenchResult, SpeedPoint


def machine(cpu: str = "cpu") -> Hardware:
    return Hardware(
        os="Linux",
        machine="x86_64",
        cpu_name=cpu,
        cpu_cores=8,
        cpu_threads=16,
        cpu_family="x86_avx2",
        ram_total_bytes=25 * GIB,
        ram_available_bytes=25 * GIB,
        ram_bandwidth_gbs=20.0,
        engines=EngineSupport(llama_installed=True),
    )


def _bench(records: WorkshopRecords, model: Path, hardware: Hardware, tg: float) -> None:
    points = (SpeedPoint(0, 10 * tg, tg), SpeedPoint(1024, 5 * tg, tg / 2))  # deeper contexts decode slower
    result = BenchResult(n_prompt=512, n_gen=128, threads=4, points=points, seconds=1.0)
    hw = hardware.as_dict()
    records.add_speed(str(model), hardware_fingerprint(hw), hw, result, job_id=None)


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    target = write_tiny_gguf(tmp_path / "target.gguf", TinyModelConfig(n_embd=256, n_ff=768, n_layer=2))
    other = write_tiny_gguf(tmp_path / "other.gguf", TinyModelConfig(n_layer=3))
    return target, other


def test_a_speed_run_is_the_models_measured_speed(tmp_path: Path, models: tuple[Path, Path]) -> None:
    store = Store(tmp_path / "db.sqlite3")
    assert bench_speeds(store, "any") == {}  # no Workshop table yet: nothing, no error
    records = WorkshopRecords(store)
    target, _ = models
    hw = machine()
    estimate = estimate_llama(read_gguf(target), EngineSettings(context_length=1024, gpu_layers=0), hw)
    assert apply_history(estimate, store, str(target), hw) == estimate
    _bench(records, target, machine("another cpu"), 999.0)  # measured elsewhere: not this machine's speed
    assert apply_history(estimate, store, str(target), hw) == estimate
    _bench(records, target, hw, 73.4)
    own = apply_history(estimate, store, str(target), hw)
    assert own.speed is not None and own.speed.confidence == Confidence.MEASURED
    assert own.tokens_per_second == 73.0  # the empty-context decode, rounded to two figures
    assert "speed run" in own.speed.basis and "tg128" in own.speed.basis
    assert own.as_dict()["tokens_per_second"] == 73.0
    store.close()


def test_other_models_speed_runs_calibrate_the_prediction(tmp_path: Path, models: tuple[Path, Path]) -> None:
    store = Store(tmp_path / "db.sqlite3")
    records = WorkshopRecords(store)
    target, other = models
    hw = machine()
    estimate = estimate_llama(read_gguf(target), EngineSettings(context_length=1024, gpu_layers=0), hw)
    prior_other = estimate_llama(read_gguf(other), EngineSettings(), hw).tokens_per_second
    assert prior_other and estimate.tokens_per_second
    _bench(records, other, hw, prior_other / 2)  # this machine runs at half the bandwidth model's speed
    corrected = apply_history(estimate, store, str(target), hw)
    assert corrected.speed is not None and corrected.speed.confidence == Confidence.CALIBRATED
    assert corrected.tokens_per_second == pytest.approx(estimate.tokens_per_second / 2, rel=0.05)
    store.close()


def test_a_chat_measurement_comes_before_a_speed_run(tmp_path: Path, models: tuple[Path, Path]) -> None:
    store = Store(tmp_path / "db.sqlite3")
    records = WorkshopRecords(store)
    target, _ = models
    hw = machine()
    estimate = estimate_llama(read_gguf(target), EngineSettings(context_length=1024, gpu_layers=0), hw)
    _bench(records, target, hw, 73.4)
    _bench(records, target, hw, 61.0)  # the newest run counts
    assert bench_speeds(store, hardware_fingerprint(hw.as_dict()))[str(target)].tokens_per_second == 61.0
    chats = ChatStore(store)
    conversation = chats.create(model=str(target), engine="llama")
    reply = chats.add_message(conversation.id, "assistant", "", MessageState.STREAMING)
    stats = GenerationStats(
        prompt_tokens=5,
        completion_tokens=32,
        time_to_first_token_ms=10.0,
        tokens_per_second=41.0,
        stop_reason="length",
        text="x",
    )
    chats.finish_message(reply.id, "hello " * 32, MessageState.DONE, stats=stats)
    own = apply_history(replace(estimate), store, str(target), hw)
    assert own.speed is not None and own.tokens_per_second == 41.0 and "chat replies" in own.speed.basis
    store.close()


def test_the_engines_decode_rate_follows_the_bytes_a_token_reads() -> None:
    """A small probe model decodes from the CPU's caches, a large one from memory: a model between takes a rate
    between (log scale), a model beyond either end that end's rate; one probe alone answers for every size."""
    from core.hardware import EngineFacts

    facts = EngineFacts("v", "cpu", decode_gbs=16.0, decode_bytes=30e6, decode_gbs_large=6.0, decode_bytes_large=250e6)
    assert facts.decode_gbs_for(2e6) == 16.0 and facts.decode_gbs_for(30e6) == 16.0
    assert facts.decode_gbs_for(250e6) == 6.0 and facts.decode_gbs_for(4e9) == 6.0
    middle = facts.decode_gbs_for((30e6 * 250e6) ** 0.5)
    assert middle == pytest.approx((16.0 * 6.0) ** 0.5)
    assert EngineFacts("v", "cpu", decode_gbs=16.0).decode_gbs_for(4e9) == 16.0  # an older cache: one probe
    assert EngineFacts.from_dict(facts.as_dict()) == facts
