"""``hangar chat MODEL --image FILE --prompt ... --json``: a vision model answers about an image (its tokens counted
in the stats); a bad image and a model without a projector are one clear line each, before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from core.devkit.visiongen import TinyProjectorConfig, png_bytes, write_tiny_vision_model
from core.engine.images import NO_PROJECTOR

IMAGE_TOKENS = TinyProjectorConfig().image_tokens


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = write_tiny_vision_model(tmp_path_factory.mktemp("vision"))
    return model


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "red square.png"
    path.write_bytes(png_bytes(48, 48))
    return path


def _chat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main.main(["chat", *argv, "--max-tokens", "6", "--temperature", "0", "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_image_is_discussed_and_its_tokens_counted(
    vision_model: Path, picture: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _chat(capsys, str(vision_model), "--image", str(picture), "--prompt", "What is this?")
    assert code == 0
    result = json.loads(out)
    assert result["image_tokens"] == IMAGE_TOKENS and result["prompt_tokens"] > IMAGE_TOKENS
    assert result["completion_tokens"] >= 1 and isinstance(result["text"], str)
    code, out, _ = _chat(
        capsys, str(vision_model), "--image", str(picture), "--image", str(picture), "--prompt", "Same?"
    )
    assert code == 0 and json.loads(out)["image_tokens"] == 2 * IMAGE_TOKENS


def test_a_library_name_brings_its_projector(
    vision_model: Path, picture: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["import", str(vision_model.parent), "--link", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["imported"]
    code, out, _ = _chat(capsys, entry["name"], "--image", str(picture), "--prompt", "What is this?")
    assert code == 0 and json.loads(out)["image_tokens"] == IMAGE_TOKENS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"%PDF-1.7 not a picture", "is a PDF document, which this model cannot read; use PNG, JPEG, GIF, BMP."),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "is a WebP image, which this model cannot read"),
    ],
)
def test_a_bad_image_is_one_line(
    content: bytes,
    message: str,
    vision_model: Path,
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "photo.png"
    bad.write_bytes(content)
    code, out, err = _chat(capsys, str(vision_model), "--image", str(bad), "--prompt", "x")
    assert code != 0
    assert json.loads(out)["error"]["message"].startswith(f"photo.png {message}")
    assert err.count("\n") == 1


def test_a_model_without_projector_says_so(
    tiny_gguf: Path, picture: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _chat(capsys, str(tiny_gguf), "--image", str(picture), "--prompt", "x")
    assert code != 0
    assert "does not take images; add its mmproj file" in json.loads(out)["error"]["message"]
    assert err.count("\n") == 1


def test_image_needs_a_prompt(vision_model: Path, picture: Path, data_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _chat(capsys, str(vision_model), "--image", str(picture))
    assert code == 2 and "--image goes with --prompt" in json.loads(out)["error"]["message"]


def test_the_interactive_chat_attaches_an_image_to_the_next_message(
    vision_model: Path,
    picture: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from core.chat.store import ChatStore
    from core.paths import AppPaths
    from core.store import Store

    lines = ["/image /no/such/photo.png", f"/image {picture}", "/image", "What is it?", "And now?", "/exit"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    code = main.main(["chat", str(vision_model), "--max-tokens", "4", "--temperature", "0"])
    _, err = capsys.readouterr()
    assert code == 0
    assert "(No image at /no/such/photo.png.)" in err
    assert "(image red square.png, 48 × 48, goes with your next message)" in err
    assert "attached for the next message: red square.png)" in err
    chats = ChatStore(Store(AppPaths.under(data_dir).database_file))
    (conversation,) = chats.conversations()
    first, reply, second, _ = chats.messages(conversation.id)
    assert first.images[0].data == picture.read_bytes() and second.images == ()  # it went with one message only
    assert reply.image_tokens == IMAGE_TOKENS and reply.state == "done"


def test_the_interactive_chat_says_when_the_model_takes_no_images(
    tiny_gguf: Path,
    picture: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(f"/image {picture}\nhello\n/exit\n"))
    assert main.main(["chat", str(tiny_gguf), "--max-tokens", "4"]) == 0
    _, err = capsys.readouterr()
    assert f"({NO_PROJECTOR})" in err and "tokens/s" in err  # refused in one line; the message still went
