"""The llama.cpp engine against the engine contract, plus what only llama.cpp does: grammars for JSON output,
its own load progress, and its failure messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.worker import serve
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.engine.host import EngineHost
from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, LoadProgress, ModelSpec
from core.errors import EngineCrashedError, InsufficientMemoryError, ModelFileError, UnsupportedModelError
from tests.backends.engine_contract import HELLO, EngineContract, generate

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "ok": {"type": "boolean"},
        "size": {"enum": ["small", "large"]},
    },
    "required": ["name", "ok", "size"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model_spec(tiny_gguf: Path) -> ModelSpec:
    return ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=1024, seed=0))


@pytest.fixture(scope="module")
def host(model_spec: ModelSpec) -> Iterator[EngineHost]:
    engine_host = EngineHost(serve, name="test-llama")
    engine_host.load_blocking(model_spec, timeout=120)
    yield engine_host
    engine_host.shutdown()


@pytest.fixture
def spare_host() -> Iterator[EngineHost]:
    """A second engine process for tests that break it."""
    engine_host = EngineHost(serve, name="test-llama-spare")
    yield engine_host
    engine_host.shutdown()


class TestLlamaContract(EngineContract):
    engine_name = "llama"


def _matches_schema(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"name", "ok", "size"}
        and isinstance(value["name"], str)
        and len(value["name"]) <= 12
        and isinstance(value["ok"], bool)
        and value["size"] in ("small", "large")
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_reply_parses_and_matches_the_schema(host: EngineHost, seed: int) -> None:
    params = GenerationParams(
        max_tokens=200, temperature=1.0, seed=seed, response_format="json_schema", json_schema=SCHEMA
    )
    stats, _ = generate(host, params)
    assert stats.stop_reason == "stop", stats.text
    assert _matches_schema(json.loads(stats.text)), stats.text


def test_json_mode_reply_is_json(host: EngineHost) -> None:
    # A random model with a JSON grammar may wander; a fixed seed makes this reply the same every run.
    params = GenerationParams(max_tokens=300, temperature=0.7, seed=4, response_format="json")
    stats, _ = generate(host, params)
    assert stats.stop_reason == "stop", stats.text
    assert isinstance(json.loads(stats.text), dict)


def test_schema_mode_without_schema_is_refused(host: EngineHost) -> None:
    with pytest.raises(Exception, match="needs a schema"):
        generate(host, GenerationParams(max_tokens=5, response_format="json_schema"))


def test_load_reports_progress(spare_host: EngineHost, model_spec: ModelSpec) -> None:
    seen: list[float | None] = []
    spare_host.events.connect(lambda e: seen.append(e.fraction) if isinstance(e, LoadProgress) else None)
    spare_host.load_blocking(model_spec, timeout=120)
    fractions = [f for f in seen if f is not None]
    assert fractions and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_model_without_chat_template_uses_the_fallback(spare_host: EngineHost, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "plain.gguf", TinyModelConfig(chat_template=None))
    info = spare_host.load_blocking(ModelSpec("llama", str(path), LoadOptions(context_length=256)))
    assert not info.has_chat_template
    stats, _ = generate(spare_host, GenerationParams(max_tokens=3, ignore_eos=True))
    assert stats.completion_tokens == 3
    # "System: ...\nUser: ...\nAssistant:" is what the fallback writes
    assert stats.prompt_tokens == spare_host.count_tokens(HELLO)


def test_corrupt_file_is_explained(spare_host: EngineHost, tiny_gguf: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"broken\.gguf"):
        spare_host.load_blocking(ModelSpec("llama", str(broken)))
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        spare_host.load_blocking(ModelSpec("llama", str(not_gguf)))
    assert spare_host.pid is not None  # the engine process survived both


def test_unsupported_architecture_is_explained(spare_host: EngineHost, tiny_gguf: Path, tmp_path: Path) -> None:
    # The same model under an architecture name llama.cpp does not know (same length, so offsets hold).
    path = tmp_path / "odd.gguf"
    path.write_bytes(tiny_gguf.read_bytes().replace(b"llama", b"hngar"))
    with pytest.raises(UnsupportedModelError, match="hngar architecture"):
        spare_host.load_blocking(ModelSpec("llama", str(path)))


def test_not_enough_memory_is_explained(spare_host: EngineHost, tmp_path: Path) -> None:
    # 16M tokens of KV cache for a 2048-wide model (256 GiB): no test machine allocates that.
    path = write_tiny_gguf(tmp_path / "wide.gguf", TinyModelConfig(n_embd=2048, n_ff=64, n_head=16, n_head_kv=16))
    with pytest.raises(InsufficientMemoryError, match="Not enough memory") as info:
        spare_host.load_blocking(ModelSpec("llama", str(path), LoadOptions(context_length=2**24)))
    assert "KV cache needed 256.0 GiB" in str(info.value)
    assert "shorter context" in str(info.value)


def test_bad_lora_adapter_is_explained(spare_host: EngineHost, tiny_gguf: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="LoRA"):
        spare_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(lora_path=str(tmp_path / "x"))))


def test_killed_engine_reports_a_crash(spare_host: EngineHost, tiny_gguf: Path) -> None:
    spare_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=1024)))
    chunks: list[str] = []

    def on_chunk(text: str) -> None:
        chunks.append(text)
        if len(chunks) == 2:
            spare_host.kill()

    params = GenerationParams(max_tokens=900, temperature=1.0, ignore_eos=True, seed=1)
    with pytest.raises(EngineCrashedError, match="killed"):
        spare_host.generate_blocking([ChatMessage("user", "hi")], params, on_chunk=on_chunk, timeout=60)
    assert spare_host.model is None
    # a new load starts a fresh engine process
    spare_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256)))
    stats, _ = generate(spare_host, GenerationParams(max_tokens=2, ignore_eos=True))
    assert stats.completion_tokens == 2


def test_lora_adapter_changes_the_reply(spare_host: EngineHost, tiny_gguf: Path, tmp_path: Path) -> None:
    from tests.support.fixtures_chat import write_tiny_gguf_lora

    greedy = GenerationParams(max_tokens=12, temperature=0.0, ignore_eos=True)
    spare_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256)))
    plain, _ = generate(spare_host, greedy)
    adapter = write_tiny_gguf_lora(tmp_path / "adapter.gguf")
    spare_host.load_blocking(
        ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256, lora_path=str(adapter)))
    )
    tuned, _ = generate(spare_host, greedy)
    assert tuned.completion_tokens == plain.completion_tokens == 12
    assert tuned.text != plain.text
    wrong = write_tiny_gguf_lora(tmp_path / "wrong.gguf", n_embd=128)
    with pytest.raises(ModelFileError, match="LoRA"):
        spare_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(lora_path=str(wrong))))
    assert spare_host.pid is not None
