"""Images checked before an engine sees them: formats by their header, bounds in bytes and pixels, OpenAI-style
message parts (data URLs, local files), and a one-line refusal for each bad input."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from core.devkit.visiongen import png_bytes
from core.engine import images
from core.engine.images import (
    ChatImage,
    image_from_bytes,
    image_from_file,
    image_from_url,
    message_from_openai,
    refuse_images,
)
from core.engine.protocol import ChatMessage
from core.errors import UnsupportedModelError, UsageError


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def _gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def _bmp(width: int, height: int) -> bytes:
    return b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, width, -height) + b"\x00" * 28


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (png_bytes(40, 30), "image/png"),
        (_jpeg(40, 30), "image/jpeg"),
        (_gif(40, 30), "image/gif"),
        (_bmp(40, 30), "image/bmp"),
    ],
)
def test_supported_formats_are_recognised_with_their_size(data: bytes, mime: str) -> None:
    image = image_from_bytes(data, "x")
    assert (image.mime, image.width, image.height) == (mime, 40, 30)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "a WebP image"),
        (b"II*\x00" + b"\x00" * 20, "a TIFF image"),
        (b"%PDF-1.7\n" + b"\x00" * 20, "a PDF document"),
        (b"hello, world", "not an image"),
    ],
)
def test_other_files_are_refused_naming_what_they_are(data: bytes, what: str) -> None:
    with pytest.raises(UsageError) as caught:
        image_from_bytes(data, "upload.bin")
    message = str(caught.value)
    assert message.startswith(f"upload.bin is {what}") and "PNG, JPEG, GIF, BMP" in message
    assert "\n" not in message


def test_a_cut_short_header_is_refused() -> None:
    with pytest.raises(UsageError, match="cut short"):
        image_from_bytes(png_bytes(40, 30)[:18], "half.png")


def test_too_many_pixels_are_refused_before_decoding() -> None:
    huge = bytearray(png_bytes(4, 4))
    huge[16:24] = struct.pack(">II", 10_000, 9_000)  # 90 megapixels claimed by a 70-byte file
    with pytest.raises(UsageError, match=r"10,000 × 9,000 pixels; images up to 40 megapixels"):
        image_from_bytes(bytes(huge), "huge.png")


def test_too_many_bytes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(200, 200) + b"\x00" * 2000)
    with pytest.raises(UsageError, match=r"big\.png is 0\.0 MB; images up to 0 MB"):
        image_from_file(path)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No image at"):
        image_from_file(tmp_path / "nope.png")


def test_openai_message_parts_become_text_and_images(tmp_path: Path) -> None:
    path = tmp_path / "dog.png"
    path.write_bytes(png_bytes(10, 20))
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(3, 4)).decode()
    message = message_from_openai(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "image_url", "image_url": {"url": path.as_uri()}},
                {"type": "text", "text": "please."},
            ],
        }
    )
    assert message.content == "Compare\nplease."
    assert [(i.width, i.height) for i in message.images] == [(3, 4), (10, 20)]
    assert message.images[1].name == "dog.png"
    assert message_from_openai({"role": "user", "content": "hi"}) == ChatMessage("user", "hi")


def test_web_addresses_are_not_fetched() -> None:
    with pytest.raises(UsageError, match="not web addresses"):
        image_from_url("https://example.com/cat.png")


def test_an_image_round_trips_as_a_data_url() -> None:
    image = image_from_bytes(png_bytes(5, 6), "a.png")
    again = image_from_url(image.data_url())
    assert again.data == image.data and again.mime == "image/png"
    assert image.to_openai()["image_url"]["url"].startswith("data:image/png;base64,")
    assert "bytes" in repr(image) and "\\x89PNG" not in repr(image)  # never the bytes in a log line


def test_refusals_for_models_without_projector_and_for_too_many_images() -> None:
    picture = image_from_bytes(png_bytes(2, 2))
    refuse_images([ChatMessage("user", "text only")], accepts_images=False)
    with pytest.raises(UnsupportedModelError, match="does not take images; add its mmproj file"):
        refuse_images([ChatMessage("user", "look", images=(picture,))], accepts_images=False)
    many = tuple(picture for _ in range(images.MAX_IMAGES + 1))
    with pytest.raises(UsageError, match="up to 16 are taken"):
        refuse_images([ChatMessage("user", "look", images=many)], accepts_images=True)
    assert isinstance(picture, ChatImage)
