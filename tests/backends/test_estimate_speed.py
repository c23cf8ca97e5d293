"""Speed predictions against the real engine on the machine that runs the tests: the tiny model and a Q4_K_M-shaped
model (zero weights: llama.cpp loads, re-lays out and decodes them exactly like trained ones). Chats record their
decode speed; the next estimate for that model must be within 25% of what the engine then measures, and says so."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from core.chat.store import ChatStore, MessageState
from core.engine.host import ChatMessage, GenerationParams, GenerationStats, LoadOptions, ModelSpec
from core.estimate.calibrate import apply_history
from core.estimate.llama import EngineSettings, estimate_llama
from core.estimate.speed import MAX_CPU_TPS, Confidence
from core.gguf import read_gguf

#: Enough tokens that each reply lasts long enough to average out a busy machine's scheduling (tiny: ~50 ms).
TOKENS = {"tiny": 320, "q4_k_m-shaped": 32}
PROMPT = [ChatMessage("user", "Tell me about the sea.")]


def _record(store: ChatStore, model: Path, stats: GenerationStats) -> None:
    """What the chat feature stores for a reply (its decode speed among the stats)."""
    conversation = store.create(model=str(model), engine="llama")
    store.add_message(conversation.id, "user", PROMPT[0].content)
    reply = store.add_message(conversation.id, "assistant", "", MessageState.STREAMING)
    store.finish_message(reply.id, stats.text, MessageState.DONE, stats=stats)


def _q4_k_m_shaped(path: Path) -> Path:
    from backends.facts import ZeroModel, write_zero_gguf

    shape = ZeroModel(
        weight_type="Q4_K", n_embd=768, n_ff=2048, n_layer=8, n_head=12, n_head_kv=4, n_vocab=32000, k_m_mix=True
    )
    write_zero_gguf(path, shape)
    return path


@pytest.mark.parametrize("which", ["tiny", "q4_k_m-shaped"])
def test_predicted_decode_speed_within_25_percent(which: str, app, tiny_gguf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tiny_gguf if which == "tiny" else _q4_k_m_shaped(tmp_path / "q4km.gguf")
    params = GenerationParams(max_tokens=TOKENS[which], temperature=0.0, ignore_eos=True, seed=1)
    hardware = app.hardware()
    settings = EngineSettings(context_length=1024, gpu_layers=0)
    estimate = estimate_llama(read_gguf(path), settings, hardware)
    assert estimate.speed is not None and estimate.tokens_per_second
    assert estimate.tokens_per_second <= MAX_CPU_TPS
    assert estimate.speed.confidence in (Confidence.PROBED, Confidence.ROUGH)  # nothing chatted yet
    host = app.new_engine_host()
    # one thread: two threads spin-waiting on each other swing tenfold when other processes share the cores
    host.load_blocking(ModelSpec("llama", str(path), LoadOptions(context_length=1024, gpu_layers=0, threads=1)))
    host.generate_blocking(PROMPT, params)  # warm-up: first touches of the weights
    chats = ChatStore(app.store)
    measured = []
    # recorded chats and later measurements interleaved: both see the same load on a shared machine
    for _ in range(3):
        _record(chats, path, host.generate_blocking(PROMPT, params))
        measured.append(host.generate_blocking(PROMPT, params).tokens_per_second)
    predicted = apply_history(estimate, app.store, str(path), hardware)
    assert predicted.speed is not None and predicted.speed.confidence == Confidence.MEASURED
    truth = statistics.median(measured)
    assert predicted.tokens_per_second == pytest.approx(truth, rel=0.25), (predicted.speed, measured)
    # the prior from the bandwidth alone is rough, but not wildly off, and its range is honest about it
    assert 0.1 < estimate.tokens_per_second / truth < 10, (estimate.speed, measured)
