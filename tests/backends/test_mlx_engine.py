"""The MLX engine against the engine contract (MLX's CPU build on Linux), plus its own refusals: structured
output it cannot constrain, folders that are not models, architectures mlx-lm does not know."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.worker import serve
from core.devkit.modelgen import TinyModelConfig
from core.devkit.modelgen_hf import write_tiny_hf_model
from core.engine.host import EngineHost
from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.errors import EngineCrashedError, EngineError, ModelFileError, UnsupportedModelError
from tests.backends.engine_contract import HELLO, EngineContract, generate


@pytest.fixture(scope="module")
def model_spec(tiny_hf_model: Path) -> ModelSpec:
    return ModelSpec("mlx", str(tiny_hf_model), LoadOptions(context_length=1024, seed=0))


@pytest.fixture(scope="module")
def host(model_spec: ModelSpec) -> Iterator[EngineHost]:
    engine_host = EngineHost(serve, name="test-mlx")
    engine_host.load_blocking(model_spec, timeout=180)
    yield engine_host
    engine_host.shutdown()


@pytest.fixture(scope="module")
def spare_host() -> Iterator[EngineHost]:
    """A second engine process for the failure tests (shared: starting MLX takes a few seconds)."""
    engine_host = EngineHost(serve, name="test-mlx-spare")
    yield engine_host
    engine_host.shutdown()


class TestMlxContract(EngineContract):
    engine_name = "mlx"


@pytest.mark.parametrize("mode", ["json", "json_schema"])
def test_structured_output_is_refused_clearly_not_ignored(host: EngineHost, mode: str) -> None:
    params = GenerationParams(max_tokens=8, response_format=mode, json_schema={"type": "object"})
    with pytest.raises(EngineError, match="not supported by the MLX engine"):
        generate(host, params)
    stats, _ = generate(host, GenerationParams(max_tokens=2, ignore_eos=True))  # still usable
    assert stats.completion_tokens == 2


def test_model_without_chat_template_uses_the_fallback(spare_host: EngineHost, tmp_path: Path) -> None:
    folder = write_tiny_hf_model(tmp_path / "plain", TinyModelConfig(chat_template=None))
    info = spare_host.load_blocking(ModelSpec("mlx", str(folder), LoadOptions(context_length=256)), timeout=120)
    assert not info.has_chat_template
    stats, _ = generate(spare_host, GenerationParams(max_tokens=3, ignore_eos=True))
    assert stats.completion_tokens == 3
    # "System: You are terse.\nUser: hello world\nAssistant:" in byte-level BPE
    assert stats.prompt_tokens == spare_host.count_tokens(HELLO) > 10


def test_folder_that_is_not_a_model_is_explained(spare_host: EngineHost, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFileError, match=r"no config\.json"):
        spare_host.load_blocking(ModelSpec("mlx", str(empty)))
    with pytest.raises(ModelFileError, match="not an MLX model folder"):
        spare_host.load_blocking(ModelSpec("mlx", str(tmp_path / "missing")))


def test_corrupt_weights_are_explained(spare_host: EngineHost, tiny_hf_model: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_hf_model, tmp_path / "broken")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="MLX could not load broken"):
        spare_host.load_blocking(ModelSpec("mlx", str(folder)), timeout=120)


def test_unsupported_architecture_is_explained(spare_host: EngineHost, tiny_hf_model: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_hf_model, tmp_path / "odd")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "hangarnet"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="hangarnet architecture is not supported"):
        spare_host.load_blocking(ModelSpec("mlx", str(folder)), timeout=120)


def test_lora_path_that_is_not_an_adapter_is_explained(
    spare_host: EngineHost, tiny_hf_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelFileError, match="not an MLX LoRA adapter"):
        spare_host.load_blocking(ModelSpec("mlx", str(tiny_hf_model), LoadOptions(lora_path=str(tmp_path))))


def test_killed_engine_reports_a_crash(spare_host: EngineHost, tiny_hf_model: Path) -> None:
    spare_host.load_blocking(ModelSpec("mlx", str(tiny_hf_model), LoadOptions(context_length=1024)), timeout=120)
    chunks: list[str] = []

    def on_chunk(text: str) -> None:
        chunks.append(text)
        if len(chunks) == 2:
            spare_host.kill()

    params = GenerationParams(max_tokens=900, temperature=1.0, ignore_eos=True, seed=1)
    with pytest.raises(EngineCrashedError, match="killed"):
        spare_host.generate_blocking([ChatMessage("user", "hi")], params, on_chunk=on_chunk, timeout=60)
    assert spare_host.model is None


def test_lora_adapter_changes_the_reply(spare_host: EngineHost, tiny_hf_model: Path, tmp_path: Path) -> None:
    from tests.support.fixtures_chat import write_tiny_mlx_adapter

    greedy = GenerationParams(max_tokens=12, temperature=0.0, ignore_eos=True)
    spare_host.load_blocking(ModelSpec("mlx", str(tiny_hf_model), LoadOptions(context_length=256)), timeout=120)
    plain, _ = generate(spare_host, greedy)
    adapter = write_tiny_mlx_adapter(tmp_path / "adapter")
    options = LoadOptions(context_length=256, lora_path=str(adapter))
    spare_host.load_blocking(ModelSpec("mlx", str(tiny_hf_model), options), timeout=120)
    tuned, _ = generate(spare_host, greedy)
    assert tuned.completion_tokens == plain.completion_tokens == 12
    assert tuned.text != plain.text
    # an adapter made for another model shape is refused with mlx-lm's reason
    wrong = write_tiny_mlx_adapter(tmp_path / "wrong", n_embd=128)
    with pytest.raises(ModelFileError, match="incompatible"):
        spare_host.load_blocking(ModelSpec("mlx", str(tiny_hf_model), LoadOptions(lora_path=str(wrong))), timeout=120)
