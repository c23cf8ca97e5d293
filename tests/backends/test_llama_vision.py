"""Images through the real llama.cpp engine child: a generated llava-style projector (``mmproj``) loaded next to a
tiny text model, images encoded into the context and counted, and the refusals (no projector, a bad image, a
projector that does not fit the model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.worker import serve
from core.chat.models import memory_lines
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.devkit.visiongen import TinyProjectorConfig, png_bytes, write_tiny_mmproj, write_tiny_vision_model
from core.engine.host import EngineHost
from core.engine.images import NO_PROJECTOR, image_from_bytes
from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.errors import ModelFileError, UnsupportedModelError, UsageError

GREEDY = GenerationParams(max_tokens=6, temperature=0.0, seed=1)
LONGER = GenerationParams(max_tokens=12, temperature=0.0, seed=1)
IMAGE_TOKENS = TinyProjectorConfig().image_tokens  # 16: (32 / 8) ** 2 patches


@pytest.fixture(scope="module")
def vision_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_vision_model(tmp_path_factory.mktemp("vision"))


@pytest.fixture(scope="module")
def host(vision_files: tuple[Path, Path]) -> Iterator[EngineHost]:
    model, projector = vision_files
    engine_host = EngineHost(serve, name="test-vision")
    spec = ModelSpec("llama", str(model), LoadOptions(context_length=512, seed=0), projector=str(projector))
    engine_host.load_blocking(spec, timeout=120)
    yield engine_host
    engine_host.shutdown()


@pytest.fixture
def spare_host() -> Iterator[EngineHost]:
    engine_host = EngineHost(serve, name="test-vision-spare")
    yield engine_host
    engine_host.shutdown()


def _ask(*images: bytes, text: str = "What is in this picture?") -> list[ChatMessage]:
    parts = tuple(image_from_bytes(data, f"picture-{n}.png") for n, data in enumerate(images))
    return [ChatMessage("user", text, images=parts)]


def test_the_model_loads_with_its_projector_and_says_so(host: EngineHost) -> None:
    info = host.model
    assert info is not None and info.vision
    projector = [size for key, size in info.allocated.items() if key.startswith("projector:")]
    assert projector and projector[0] > 40_000  # its weights (about 60 KiB) and its compute buffer
    assert any(line.startswith("Vision projector: 0.1 MiB") for line in memory_lines(info, None))


def test_an_image_is_encoded_counted_and_answered(host: EngineHost) -> None:
    plain = host.count_tokens(_ask())
    with_image = host.count_tokens(_ask(png_bytes(40, 30)))
    # the image's 16 positions, plus the marker's newline
    assert IMAGE_TOKENS <= with_image - plain <= IMAGE_TOKENS + 2
    stats = host.generate_blocking(_ask(png_bytes(40, 30)), GREEDY, timeout=120)
    assert stats.image_tokens == IMAGE_TOKENS
    assert stats.prompt_tokens == with_image
    assert stats.completion_tokens >= 1 and stats.text


def test_two_images_take_two_images_worth_of_positions(host: EngineHost) -> None:
    stats = host.generate_blocking(_ask(png_bytes(40, 30), png_bytes(8, 64, (0, 0, 255))), GREEDY, timeout=120)
    assert stats.image_tokens == 2 * IMAGE_TOKENS


def test_the_image_changes_what_the_model_reads(host: EngineHost) -> None:
    """Random weights babble, but the same words after a red and a blue picture are different prompts: the image
    really reaches the model (greedy decoding, so only the image differs)."""
    red = host.generate_blocking(_ask(png_bytes(32, 32, (255, 0, 0))), LONGER, timeout=120)
    blue = host.generate_blocking(_ask(png_bytes(32, 32, (0, 0, 255))), LONGER, timeout=120)
    again = host.generate_blocking(_ask(png_bytes(32, 32, (255, 0, 0))), LONGER, timeout=120)
    assert red.text == again.text
    assert red.text != blue.text


def test_text_after_an_image_reply_does_not_reuse_the_image_positions(host: EngineHost) -> None:
    """The context's token list is what llama-cpp-python matches a new prompt against to reuse its cache. After a
    text prompt, an image prompt writes its embeddings where that text's tokens were; the same text prompt again
    must not match them and answer from the image's context."""
    text_only = [ChatMessage("user", "What is in this picture?")]
    before = host.generate_blocking(text_only, LONGER, timeout=120)
    host.generate_blocking(_ask(png_bytes(40, 30)), GREEDY, timeout=120)
    after = host.generate_blocking(text_only, LONGER, timeout=120)
    assert after.text == before.text


def test_a_typed_media_marker_is_only_text(host: EngineHost) -> None:
    stats = host.generate_blocking(_ask(png_bytes(40, 30), text="what is <__media__> here?"), GREEDY, timeout=120)
    assert stats.image_tokens == IMAGE_TOKENS


def test_a_model_without_projector_refuses_images_in_one_line(spare_host: EngineHost, tiny_gguf: Path) -> None:
    spare_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256)), timeout=120)
    assert spare_host.model is not None and not spare_host.model.vision
    with pytest.raises(UnsupportedModelError, match="does not take images; add its mmproj file"):
        spare_host.generate_blocking(_ask(png_bytes(40, 30)), GREEDY, timeout=60)
    with pytest.raises(UnsupportedModelError, match=NO_PROJECTOR[:20]):
        spare_host.count_tokens(_ask(png_bytes(40, 30)))
    assert spare_host.generate_blocking([ChatMessage("user", "hi")], GREEDY, timeout=60).completion_tokens >= 1


def test_a_damaged_image_is_refused_and_the_chat_goes_on(host: EngineHost) -> None:
    header_only = png_bytes(40, 30)[:40]  # a PNG header and no picture: passes the sniff, fails the decoder
    with pytest.raises(UsageError, match="could not be decoded"):
        host.generate_blocking(_ask(header_only), GREEDY, timeout=60)
    assert host.generate_blocking(_ask(png_bytes(40, 30)), GREEDY, timeout=120).image_tokens == IMAGE_TOKENS


def test_a_projector_made_for_another_model_is_refused_at_load(spare_host: EngineHost, tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "wide.gguf", TinyModelConfig(n_embd=96, n_head=4, n_head_kv=2))
    projector = write_tiny_mmproj(tmp_path / "mmproj-narrow.gguf", TinyProjectorConfig(n_embd_text=64))
    spec = ModelSpec("llama", str(model), LoadOptions(context_length=256), projector=str(projector))
    with pytest.raises(ModelFileError, match=r"could not load the projector mmproj-narrow\.gguf"):
        spare_host.load_blocking(spec, timeout=120)
    assert spare_host.model is None


def test_a_text_model_given_as_projector_is_refused(spare_host: EngineHost, tiny_gguf: Path) -> None:
    spec = ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256), projector=str(tiny_gguf))
    with pytest.raises(ModelFileError, match="is not a vision projector"):
        spare_host.load_blocking(spec, timeout=120)


def test_a_truncated_projector_is_named_and_nothing_stays_loaded(
    spare_host: EngineHost, vision_files: tuple[Path, Path], tmp_path: Path
) -> None:
    model, projector = vision_files
    cut = tmp_path / "mmproj-cut.gguf"
    cut.write_bytes(projector.read_bytes()[: projector.stat().st_size // 2])
    spec = ModelSpec("llama", str(model), LoadOptions(context_length=256), projector=str(cut))
    with pytest.raises(ModelFileError, match=r"mmproj-cut\.gguf"):
        spare_host.load_blocking(spec, timeout=120)
    assert spare_host.model is None
    spare_host.load_blocking(ModelSpec("llama", str(model), LoadOptions(context_length=256)), timeout=120)
    assert spare_host.model is not None and not spare_host.model.vision
