"""The estimator against the real engine on the machine that runs the tests: small models loaded through Hangar's
llama.cpp backend in its child process; llama.cpp's own buffer sizes must match the estimate within 3%, and its
fit pass within 0.5% (the full zoo is bench/). No test names a buffer that only one CPU has: which extra buffers
llama.cpp uses here (CPU_REPACK, AMX, KLEIDIAI, …) is what its own probe reported on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.engine.protocol import LoadOptions, ModelSpec
from core.estimate.exact import refine
from core.estimate.llama import SOURCE_ANALYTIC, SOURCE_FIT, EngineSettings, estimate_llama
from core.estimate.records import compare, load_history, record_load, record_model_load
from core.gguf import read_gguf
from core.hardware import Hardware, detect_hardware

CASES = {
    # name: (model, context, KV type, flash attention)
    "gqa-f16": (
        TinyModelConfig(n_embd=256, n_head=8, n_head_kv=2, n_ff=768, n_layer=2, n_vocab=4000),
        1024,
        "f16",
        False,
    ),
    "q4_0-q8_0-kv": (
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
HOST_MAPPED = ("CPU", "CPU_Mapped")


@pytest.fixture(scope="module")
def hardware(tmp_path_factory: pytest.TempPathFactory) -> Hardware:
    """This machine as the app sees it, with llama.cpp's own facts (measured in a child process)."""
    from backends.probe import probe_engines

    cache = tmp_path_factory.mktemp("cache")
    found = detect_hardware(lambda: probe_engines(cache), cache_dir=cache)
    assert found.engines.facts is not None, "llama.cpp's facts probe failed"
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_estimate_matches_llama_cpp(name: str, app, hardware: Hardware, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from backends.facts import fit_in_child

    config, ctx, kv, flash = CASES[name]
    path = write_tiny_gguf(tmp_path / f"{name}.gguf", config)
    info_header = read_gguf(path)
    settings = EngineSettings(context_length=ctx, kv_cache_type=kv, flash_attention=flash, gpu_layers=0)
    estimate = estimate_llama(info_header, settings, hardware)
    assert estimate.source == SOURCE_ANALYTIC
    host = app.new_engine_host()
    spec = ModelSpec(
        "llama",
        str(path),
        LoadOptions(
            context_length=ctx,
            kv_cache_type=kv,
            flash_attention=flash,
            gpu_layers=0,
            threads=1,
            # as the app's engine loads here (off where the probe saw the extra buffer types crash)
            use_extra_bufts=estimate.settings.extra_buffers,
        ),
    )
    info = host.load_blocking(spec)
    result = compare(estimate, info.allocated)
    assert result.actual["weights"] > 0 and result.actual["kv"] > 0 and result.actual["compute"] > 0
    assert result.estimated["weights"] == pytest.approx(result.actual["weights"], rel=0.002, abs=6000)
    assert result.estimated["kv"] == pytest.approx(result.actual["kv"], rel=0.002, abs=6000)
    assert abs(result.error_pct) < 3.0, (result.estimated, result.actual)
    # the extra buffers llama.cpp really filled are the ones its probe said it would, whatever this CPU has
    facts = hardware.engines.facts
    assert facts is not None
    used = {k.split(":", 1)[1] for k, v in info.allocated.items() if k.startswith("model:") and v > 0}
    # (none where the probe saw them crash: the engine then loads with them off, and the estimate follows)
    expected = {b.name for b in facts.extra_buffers if info_header.dominant_type in b.types}
    expected = set() if facts.extra_buffers_crash else expected
    assert used - set(HOST_MAPPED) == expected
    assert (estimate.host.repack > 0) == bool(expected)
    # llama.cpp's own fit pass, in a child process: exact
    exact = refine(estimate, path, fit_in_child)
    assert exact.source == SOURCE_FIT
    exact_result = compare(exact, info.allocated)
    assert abs(exact_result.error_pct) < 0.5, (exact_result.estimated, exact_result.actual)
    record = record_load(app.store, estimate, info.allocated)
    assert load_history(app.store)[0].id == record.id
    # what the chat feature calls after each load: the same numbers from the spec and the loaded info
    again = record_model_load(app.store, spec, info, hardware)
    assert again is not None and again.error_pct == pytest.approx(record.error_pct)
    assert [r.id for r in load_history(app.store, model=path.name)] == [again.id, record.id]


def test_fit_pass_on_a_broken_file_keeps_the_app_alive(tmp_path: Path, tiny_gguf: Path) -> None:
    """A file llama.cpp refuses (or crashes on) fails in the child; the analytic estimate stands, with a note."""
    from backends.facts import fit_in_child

    estimate = estimate_llama(read_gguf(tiny_gguf), EngineSettings(context_length=512, gpu_layers=0))
    broken = tmp_path / "broken.gguf"
    data = tiny_gguf.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the header is whole, the tensor data is cut off
    kept = refine(estimate, broken, fit_in_child)
    assert kept.source == SOURCE_ANALYTIC and "fit pass did not run" in kept.notes[-1]
    with pytest.raises(RuntimeError):
        fit_in_child({"path": str(tmp_path / "missing.gguf"), "n_ctx": 512})


def test_engine_facts_are_cached_per_build_and_cpu(tmp_path: Path) -> None:
    from backends.facts import PROBE_TYPES, engine_facts

    first = engine_facts(tmp_path)
    assert first is not None and set(first.probed_types) <= set(PROBE_TYPES) and "F16" in first.probed_types
    assert any(d.kind == "cpu" and d.total_bytes > 0 for d in first.devices)
    assert first.decode_gbs > 0  # llama.cpp's own decode speed on this machine, the speed model's input
    assert first.decode_bytes_large > first.decode_bytes > 0 and first.decode_gbs_large > 0  # in memory, not cache
    for buffer in first.extra_buffers:
        assert buffer.name not in HOST_MAPPED and all(0.5 < r < 2.0 for r in buffer.types.values())
    again = engine_facts(tmp_path)
    assert again == first  # read back from the cache, not measured again
    assert (tmp_path / "engine-facts.json").is_file()
