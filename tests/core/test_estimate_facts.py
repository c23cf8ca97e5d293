"""The estimator's inputs from this machine (engine facts, bandwidth, records, chat speeds) and the field report's
core items: size-based estimates for headers without shape data, the context capped at the trained length, the
best quant never defaulting to the worst, plausible rounded speeds, and one unit system. Machines are described
(the estimator's input); nothing here runs an engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.chat.models import load_options
from core.chat.store import ChatStore, MessageState
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.engine.host import GenerationStats
from core.estimate.calibrate import apply_history, estimate_accuracy, memory_correction
from core.estimate.facts import FACTS_FILE, load_cached, save_cached
from core.estimate.fitting import FitLevel, fit_level
from core.estimate.llama import SOURCE_SIZE, EngineSettings, Verdict, estimate_llama
from core.estimate.records import record_load
from core.estimate.speed import MAX_CPU_TPS, Confidence, format_speed, measured_speeds, predict, round_speed
from core.estimate.units import budget_words, format_bytes
from core.gguf import GGUFInfo, read_gguf
from core.hardware import GIB, EngineFacts, EngineSupport, ExtraBuffer, Hardware, host_bandwidth
from core.hub.fit import QuantFit, best_fit
from core.settings import Settings
from core.store import Store


def machine(facts: EngineFacts | None = None, ram: int = 25 * GIB, bandwidth: float | None = 20.0) -> Hardware:
    return Hardware(
        os="Linux",
        machine="x86_64",
        cpu_name="cpu",
        cpu_cores=8,
        cpu_threads=16,
        cpu_family="x86_avx2",
        ram_total_bytes=ram,
        ram_available_bytes=ram,
        ram_bandwidth_gbs=bandwidth,
        engines=EngineSupport(llama_installed=True, facts=facts),
    )


@pytest.fixture(scope="module")
def q8(tmp_path_factory: pytest.TempPathFactory) -> GGUFInfo:
    config = TinyModelConfig(n_embd=256, n_head=4, n_head_kv=2, n_ff=768, n_layer=2, n_vocab=4000, weight_type="Q8_0")
    return read_gguf(write_tiny_gguf(tmp_path_factory.mktemp("facts") / "q8.gguf", config))


def test_repacked_weights_come_from_the_engine_facts(q8: GGUFInfo) -> None:
    """An AMX-like machine whose engine said it re-lays out Q8_0 (this CPU may not): the copy is counted."""
    matrices = sum(
        t.n_bytes for t in q8.tensors if t.type_name == "Q8_0" and len(t.shape) >= 2 and t.name != "token_embd.weight"
    )
    amx = EngineFacts("0.3.36", "k", extra_buffers=(ExtraBuffer("AMX", {"Q8_0": 1.0, "F16": 1.0}),))
    plain = EngineFacts("0.3.36", "k", extra_buffers=(ExtraBuffer("CPU_REPACK", {"Q4_0": 1.0}),))
    settings = EngineSettings(context_length=1024, gpu_layers=0)
    with_amx = estimate_llama(q8, settings, machine(amx))
    without = estimate_llama(q8, settings, machine(plain))
    assert with_amx.host.repack == matrices > 0 and without.host.repack == 0
    assert 0 < with_amx.host.reclaimable <= matrices  # mapped pages of re-laid-out matrices inside the span
    bigger = EngineFacts("0.3.36", "k", extra_buffers=(ExtraBuffer("AMX", {"Q8_0": 1.25}),))
    assert estimate_llama(q8, settings, machine(bigger)).host.repack == round(matrices * 1.25)
    # without facts the estimate says it assumed the usual rules
    assert any("not asked" in n for n in estimate_llama(q8, settings, machine(None)).notes)
    assert not any("not asked" in n for n in with_amx.notes)


def test_facts_cache_is_keyed_by_build_and_cpu(tmp_path: Path) -> None:
    facts = EngineFacts("0.3.36", "cpu-a", extra_buffers=(ExtraBuffer("CPU_REPACK", {"Q4_0": 1.0}),))
    path = tmp_path / FACTS_FILE
    save_cached(path, facts)
    assert load_cached(path, "0.3.36", "cpu-a") == facts
    assert load_cached(path, "0.3.37", "cpu-a") is None  # another llama.cpp build: measure again
    assert load_cached(path, "0.3.36", "cpu-b") is None  # another CPU
    path.write_text("{not json", encoding="utf-8")
    assert load_cached(path, "0.3.36", "cpu-a") is None


def test_bandwidth_is_measured_once_per_machine(tmp_path: Path) -> None:
    calls: list[int] = []

    def measure() -> float:
        calls.append(1)
        return 12.5

    assert host_bandwidth(tmp_path, "cpu", measure) == 12.5
    assert host_bandwidth(tmp_path, "cpu", measure) == 12.5 and len(calls) == 1
    assert host_bandwidth(tmp_path, "another cpu", measure) == 12.5 and len(calls) == 2
    from core.hardware import measure_host_bandwidth

    assert measure_host_bandwidth(size=16 * 1024 * 1024, repeats=2) > 0.1  # the real probe, small


def _shapeless_gguf(path: Path, size: int) -> Path:
    """A GGUF of an architecture whose header carries no shape keys (as the field report's 398 MB file)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "mystery")
    writer.add_name("mystery")
    writer.add_tensor("weights", np.zeros(size // 2, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_header_without_shape_gets_a_size_based_estimate(tmp_path: Path) -> None:
    info = read_gguf(_shapeless_gguf(tmp_path / "mystery.gguf", 4 * 1024 * 1024))
    estimate = estimate_llama(info, EngineSettings(context_length=4096), machine())
    assert estimate.source == SOURCE_SIZE and estimate.verdict is Verdict.CPU_ONLY
    assert fit_level(estimate) is FitLevel.FITS  # never "fit unknown" for a small file on a roomy machine
    assert estimate.host.weights == info.weights_bytes
    assert "size-based" in estimate.notes[0]
    assert estimate.as_dict()["source"] == "size-based"
    tiny_ram = estimate_llama(info, EngineSettings(context_length=4096), machine(ram=GIB))
    assert tiny_ram.verdict is Verdict.TOO_LARGE


def test_context_is_capped_at_the_trained_length(tmp_path: Path) -> None:
    short = write_tiny_gguf(tmp_path / "short.gguf", TinyModelConfig(context_length=2048))
    info = read_gguf(short)
    roomy = estimate_llama(info, EngineSettings(context_length=1024, gpu_layers=0), machine(ram=512 * GIB))
    assert roomy.max_context == 2048  # never more than trained, however much memory there is
    beyond = estimate_llama(info, EngineSettings(context_length=8192, gpu_layers=0), machine())
    assert any("RoPE scaling" in n for n in beyond.notes)  # allowed only when asked, and said so
    # a model trained for 2,048 never defaults to 4,096; an explicit longer context stays the user's choice
    from core.chat.models import ResolvedModel

    model = ResolvedModel("llama", short, "short")
    assert load_options(Settings(default_context_length=4096), model=model).context_length == 2048
    assert load_options(Settings(default_context_length=1024), model=model).context_length == 1024
    assert load_options(Settings(), context_length=8192, model=model).context_length == 8192


def test_best_quant_never_defaults_to_the_worst() -> None:
    keys = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q8_0"]
    sizes = {k: i for i, k in enumerate(keys)}
    unknown = [QuantFit(k, error="header lacks shape") for k in keys]
    assert best_fit(unknown, sizes) == "Q4_K_M"
    assert best_fit([QuantFit("Q2_K", error="x")], {"Q2_K": 1}) is None


def test_speed_is_capped_rounded_and_says_how_sure() -> None:
    tiny = predict(100_000, 0, 2, host_gbs=50.0, gpu_gbs=None)
    assert tiny is not None and tiny.tokens_per_second <= MAX_CPU_TPS and tiny.confidence == Confidence.PROBED
    tiniest = predict(1000, 0, 1, host_gbs=1000.0, gpu_gbs=None)
    assert tiniest is not None and tiniest.tokens_per_second == MAX_CPU_TPS  # capped: never "37,235 tokens/s"
    assert round_speed(37235.4) == 37000 and round_speed(93.6) == 94 and round_speed(3.14159) == 3.1
    assert format_speed(37235.4) == "37,000" and format_speed(3.14) == "3.1"
    rough = predict(1e9, 0, 32, host_gbs=None, gpu_gbs=None)
    assert rough is not None and rough.confidence == Confidence.ROUGH and rough.low < rough.tokens_per_second
    assert predict(1e9, 1e9, 32, host_gbs=10.0, gpu_gbs=None) is None  # a GPU of unknown bandwidth
    # llama.cpp's own decode speed, when its probe measured one, wins over the copy bandwidth
    engine = predict(1e9, 0, 32, host_gbs=50.0, gpu_gbs=None, engine_gbs=5.0)
    copy = predict(1e9, 0, 32, host_gbs=50.0, gpu_gbs=None)
    assert engine is not None and copy is not None and engine.tokens_per_second < copy.tokens_per_second
    assert "llama.cpp's own decode" in engine.basis and engine.tokens_per_second == pytest.approx(5.0, rel=0.05)


def test_units_are_binary_everywhere() -> None:
    assert format_bytes(1024**3) == "1.0 GiB" and format_bytes(1536 * 1024**2) == "1.5 GiB"
    assert format_bytes(398 * 1024**2) == "398 MiB" and format_bytes(None) == "—" and format_bytes(512) == "512 B"
    assert format_bytes(25 * 1024**3) == "25.0 GiB"
    words = budget_words(21 * GIB, 22 * GIB, 24 * GIB)
    assert "21.0 GiB" in words and "free of 24.0 GiB" in words and "margin" in words


def _chat(store: Store, model: str, tps: float, replies: int = 3) -> None:
    chats = ChatStore(store)
    conversation = chats.create(model=model, engine="llama")
    for _ in range(replies):
        chats.add_message(conversation.id, "user", "hi")
        message = chats.add_message(conversation.id, "assistant", "")
        stats = GenerationStats(
            prompt_tokens=5,
            completion_tokens=32,
            time_to_first_token_ms=10.0,
            tokens_per_second=tps,
            stop_reason="length",
            text="x",
        )
        chats.finish_message(message.id, "hello " * 32, MessageState.DONE, stats=stats)


def test_chat_speeds_calibrate_later_predictions(tmp_path: Path, q8: GGUFInfo) -> None:
    store = Store(tmp_path / "db.sqlite3")
    path = tmp_path / "q8.gguf"
    write_tiny_gguf(path, TinyModelConfig(n_embd=256, n_head=4, n_head_kv=2, n_ff=768, n_layer=2, n_vocab=4000))
    other = write_tiny_gguf(tmp_path / "other.gguf", TinyModelConfig(n_layer=3))
    hw = machine()
    estimate = estimate_llama(read_gguf(path), EngineSettings(context_length=1024, gpu_layers=0), hw)
    assert apply_history(estimate, store, str(path), hw) == estimate  # no history: unchanged
    prior_other = estimate_llama(read_gguf(other), EngineSettings(), hw).tokens_per_second
    assert prior_other
    _chat(store, str(other), prior_other / 2)  # this machine runs at half the bandwidth model's speed
    assert measured_speeds(store)[str(other)].replies == 3
    calibrated = apply_history(estimate, store, str(path), hw)
    assert calibrated.speed is not None and calibrated.speed.confidence == Confidence.CALIBRATED
    assert calibrated.tokens_per_second == pytest.approx(estimate.tokens_per_second / 2, rel=0.05)
    _chat(store, str(path), 41.0)
    own = apply_history(estimate, store, str(path), hw)
    assert own.speed is not None and own.speed.confidence == Confidence.MEASURED and own.tokens_per_second == 41.0
    assert own.speed.low < 41.0 < own.speed.high
    store.close()


def test_records_correct_later_estimates_and_report_accuracy(tmp_path: Path, q8: GGUFInfo) -> None:
    store = Store(tmp_path / "db.sqlite3")
    assert estimate_accuracy(store).count == 0 and "No model" in estimate_accuracy(store).words
    estimate = estimate_llama(q8, EngineSettings(context_length=1024, gpu_layers=0), machine())
    host = estimate.host
    # llama.cpp allocated 10% more compute than estimated, twice; everything else as estimated
    allocated = {
        "model:CPU_Mapped": host.weights + host.repack,
        "kv:CPU": host.kv,
        "compute:CPU": round(host.compute * 1.1),
        "output:CPU": host.output,
    }
    for _ in range(2):
        record_load(store, estimate, allocated)
    assert memory_correction(store) == {"compute": pytest.approx(1.1, rel=1e-3)}
    corrected = apply_history(estimate, store, None, machine())
    assert corrected.host.compute == pytest.approx(host.compute * 1.1, rel=1e-3)
    assert any("Corrected by earlier loads" in n for n in corrected.notes)
    accuracy = estimate_accuracy(store)
    assert accuracy.count == 2 and accuracy.worst_error_pct < 0 and "off by" in accuracy.words
    assert json.dumps(corrected.as_dict())  # still serializable
    store.close()


def test_header_stub_is_sparse_and_reads_as_the_original(tmp_path: Path) -> None:
    from core.estimate.exact import header_stub
    from core.gguf.source import FileSource

    config = TinyModelConfig(n_embd=256, n_ff=1024, n_layer=4, n_vocab=2000, weight_type="Q8_0")
    original = write_tiny_gguf(tmp_path / "orig.gguf", config)
    info = read_gguf(original)
    source = FileSource(original)
    try:
        stub = header_stub(source, info, tmp_path / "stub" / "orig.gguf")
    finally:
        source.close()
    assert stub is not None and stub.stat().st_size == original.stat().st_size
    assert stub.stat().st_blocks * 512 < original.stat().st_size / 2  # a hole where the weights were
    again = read_gguf(stub)
    assert again.tensors == info.tensors and again.context_length == info.context_length


def test_starter_suggestions_never_promise_implausible_speeds() -> None:
    from dataclasses import replace

    from core.estimate.speed import MAX_GPU_TPS
    from core.hardware import GpuDevice
    from core.hub.suggestions import rough_speed

    gpu = GpuDevice(0, "fast", "nvidia", "cuda", total_bytes=80 * GIB, free_bytes=80 * GIB, bandwidth_gbs=3000.0)
    fast = replace(machine(), gpus=(gpu,), engines=EngineSupport(llama_installed=True, llama_gpu_offload=True))
    speed = rough_speed(10 * 1024 * 1024, FitLevel.FITS, fast)  # a 10 MiB model: "about 37,235 tokens/s" before
    assert speed is not None and speed <= MAX_GPU_TPS and speed == round_speed(speed)
    cpu = rough_speed(400 * 1024 * 1024, FitLevel.FITS, machine(bandwidth=20.0))
    assert cpu is not None and 5 < cpu < MAX_CPU_TPS


def test_a_machine_whose_extra_buffers_crash_counts_no_repacked_copies(q8: GGUFInfo, tmp_path: Path) -> None:
    """Where the probe saw the extra buffer types crash, the engine loads with them off: the estimate (and the
    request for llama.cpp's own fit pass) follow, instead of counting an AMX copy that will never exist."""
    from core.estimate.exact import fit_request

    buffers = (ExtraBuffer("AMX", {"Q8_0": 1.0, "F16": 1.0}),)
    settings = EngineSettings(context_length=1024, gpu_layers=0)
    works = estimate_llama(q8, settings, machine(EngineFacts("0.3.36", "k", extra_buffers=buffers)))
    crashes = estimate_llama(
        q8, settings, machine(EngineFacts("0.3.36", "k", extra_buffers=buffers, extra_buffers_crash=True))
    )
    assert works.host.repack > 0 and crashes.host.repack == 0
    assert crashes.host.total < works.host.total and not crashes.settings.extra_buffers
    assert fit_request(tmp_path / "m.gguf", crashes)["extra_buffers"] is False
    assert fit_request(tmp_path / "m.gguf", works)["extra_buffers"] is True
    # and the cache keeps the fact
    path = tmp_path / FACTS_FILE
    facts = EngineFacts("0.3.36", "k", extra_buffers=buffers, extra_buffers_crash=True, decode_gbs=4.2)
    save_cached(path, facts)
    assert load_cached(path, "0.3.36", "k") == facts
