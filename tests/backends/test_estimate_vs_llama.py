"""The estimator against the real engine: small models loaded through Hangar's llama.cpp backend in its child
process; llama.cpp's own buffer sizes must match the estimate within 3% (the full zoo is bench/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.engine.protocol import LoadOptions, ModelSpec
from core.estimate.llama import EngineSettings, estimate_llama
from core.estimate.records import compare, load_history, record_load, record_model_load
from core.gguf import read_gguf
from core.hardware import detect_hardware

CASES = {
    # name: (model, context, KV type, flash attention)
    "gqa-f16": (
        TinyModelConfig(n_embd=256, n_head=8, n_head_kv=2, n_ff=768, n_layer=2, n_vocab=4000),
        1024,
        "f16",
        False,
    ),
    "q4_0-repacked-q8_0-kv": (
        TinyModelConfig(n_embd=256, n_head=4, n_head_kv=2, n_ff=768, n_layer=2, n_vocab=4000, weight_type="Q4_0"),
        2048,
        "q8_0",
        True,
    ),
    "gemma3-sliding-window": (
        TinyModelConfig(
            arch="gemma3",
            n_embd=256,
            n_head=2,
            n_head_kv=1,
            head_dim=128,
            n_ff=1024,
            n_layer=7,
            n_vocab=4000,
            sliding_window=256,
        ),
        768,
        "f16",
        False,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_estimate_matches_llama_cpp(name: str, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from backends.probe import probe_engines

    config, ctx, kv, flash = CASES[name]
    path = write_tiny_gguf(tmp_path / f"{name}.gguf", config)
    estimate = estimate_llama(
        read_gguf(path),
        EngineSettings(context_length=ctx, kv_cache_type=kv, flash_attention=flash, gpu_layers=0),
        detect_hardware(probe_engines),
    )
    host = app.new_engine_host()
    spec = ModelSpec(
        "llama",
        str(path),
        LoadOptions(context_length=ctx, kv_cache_type=kv, flash_attention=flash, gpu_layers=0, threads=1),
    )
    info = host.load_blocking(spec)
    result = compare(estimate, info.allocated)
    assert result.actual["weights"] > 0 and result.actual["kv"] > 0 and result.actual["compute"] > 0
    assert result.estimated["weights"] == pytest.approx(result.actual["weights"], rel=0.002, abs=6000)
    assert result.estimated["kv"] == pytest.approx(result.actual["kv"], rel=0.002, abs=6000)
    assert abs(result.error_pct) < 3.0, (result.estimated, result.actual)
    if name.startswith("q4_0"):
        assert "model:CPU_REPACK" in info.allocated  # the repacked copy is real and counted
    record = record_load(app.store, estimate, info.allocated)
    assert load_history(app.store)[0].id == record.id
    # what the chat feature calls after each load: the same numbers from the spec and the loaded info
    again = record_model_load(app.store, spec, info)
    assert again is not None and again.error_pct == pytest.approx(record.error_pct)
    assert [r.id for r in load_history(app.store, model=path.name)] == [again.id, record.id]
