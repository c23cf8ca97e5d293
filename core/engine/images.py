"""Images in chat messages: checked before any engine sees them, and the message parts that carry them.

An image crosses the engine boundary as bytes (``ChatImage``) attached to a ``ChatMessage``. It is accepted only in
a format llama.cpp's image reader (stb_image) decodes — PNG, JPEG, GIF (first frame), BMP — and only within bounds
on its size in bytes and in pixels, read from its header before anything decodes it. Every refusal is one sentence.

For the window and the server: ``image_from_file`` (a dropped or pasted file), ``image_from_bytes`` (pasted data),
``image_from_url`` (an OpenAI ``image_url``: a ``data:`` URL or a local path/``file://`` URL) and
``message_from_openai`` (a whole OpenAI-style message whose content is a list of text and image parts).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from core.errors import UnsupportedModelError, UsageError

if TYPE_CHECKING:
    from core.engine.protocol import ChatMessage

#: Largest image file taken (bytes) and largest decoded image (pixels, and pixels on one side): a 40-megapixel
#: photo decodes to 120 MB of RGB before the projector shrinks it to its own size.
MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_SIDE = 16_384
#: Most images in one request.
MAX_IMAGES = 16
#: The formats llama.cpp's reader decodes, by MIME type.
SUPPORTED = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/bmp": "BMP"}
NO_PROJECTOR = "This model does not take images; add its mmproj file (the vision projector) next to it."


@dataclass(frozen=True)
class ChatImage:
    """One image of a message: its bytes as read, what they are, and where they came from (for messages)."""

    data: bytes
    mime: str
    width: int
    height: int
    name: str = "image"

    def __repr__(self) -> str:  # never the bytes in a log line
        return f"ChatImage({self.name!r}, {self.mime}, {self.width}x{self.height}, {len(self.data)} bytes)"

    def data_url(self) -> str:
        """The image as an OpenAI ``image_url`` value (``data:image/png;base64,...``)."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_openai(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.data_url()}}


def image_from_bytes(data: bytes, name: str = "image") -> ChatImage:
    """Check ``data`` (format and bounds, from its header) and wrap it. Raises ``UsageError`` in one sentence."""
    if len(data) > MAX_IMAGE_BYTES:
        raise UsageError(
            f"{name} is {len(data) / 1e6:.1f} MB; images up to {MAX_IMAGE_BYTES // (1024 * 1024)} MB are taken."
        )
    mime, width, height = sniff_image(data, name)
    if width <= 0 or height <= 0:
        raise UsageError(f"{name} says it is {width} × {height} pixels; it is damaged.")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise UsageError(
            f"{name} is {width:,} × {height:,} pixels; images up to {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
            f"(and {MAX_IMAGE_SIDE:,} pixels a side) are taken. Scale it down first."
        )
    return ChatImage(data, mime, width, height, name)


def image_from_file(path: Path | str) -> ChatImage:
    """A dropped, pasted or named image file, checked. Raises ``UsageError`` in one sentence."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"No image at {path}.")
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise UsageError(
            f"{path.name} is {size / 1e6:.1f} MB; images up to {MAX_IMAGE_BYTES // (1024 * 1024)} MB are taken."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path.name} could not be read ({exc.strerror or exc}).") from exc
    return image_from_bytes(data, path.name)


def image_from_url(url: str) -> ChatImage:
    """An OpenAI ``image_url``: a ``data:`` URL, a ``file://`` URL or a local path. Remote URLs are refused (Hangar
    does not fetch from the network on a message's behalf)."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise UsageError("An image data URL must be base64 (data:image/png;base64,...).")
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise UsageError(f"The image data URL is not valid base64: {exc}.") from exc
        return image_from_bytes(data, "the pasted image")
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        raise UsageError("Images are taken as data: URLs or local files, not web addresses; download it first.")
    if parsed.scheme == "file":
        return image_from_file(unquote(parsed.path))
    return image_from_file(url)


def message_from_openai(message: Mapping[str, Any]) -> ChatMessage:
    """An OpenAI-style chat message (``content`` a string, or a list of ``text`` and ``image_url`` parts) as a
    ``ChatMessage`` with its images attached; the text parts are joined in order."""
    from core.engine.protocol import ChatMessage

    role = str(message.get("role", "user"))
    content = message.get("content")
    if content is None or isinstance(content, str):
        return ChatMessage(role, content or "")
    if not isinstance(content, Sequence):
        raise UsageError("A message's content must be text or a list of parts.")
    texts: list[str] = []
    images: list[ChatImage] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            value = part.get("image_url")
            url = value.get("url") if isinstance(value, Mapping) else value
            if not isinstance(url, str) or not url:
                raise UsageError("An image_url part needs a url.")
            images.append(image_from_url(url))
        else:
            raise UsageError(f"Unknown message part {kind!r}; parts are text and image_url.")
    return ChatMessage(role, "\n".join(texts), images=tuple(images))


def count_images(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.images) for m in messages)


def refuse_images(messages: Sequence[ChatMessage], accepts_images: bool) -> None:
    """Raise the one-line refusal when ``messages`` carry images the loaded model cannot read, or too many."""
    count = count_images(messages)
    if count and not accepts_images:
        raise UnsupportedModelError(NO_PROJECTOR)
    if count > MAX_IMAGES:
        raise UsageError(f"{count} images in one conversation; up to {MAX_IMAGES} are taken.")


# -- headers ---------------------------------------------------------------------------------------------------


def sniff_image(data: bytes, name: str = "image") -> tuple[str, int, int]:
    """``(mime, width, height)`` from an image's first bytes, or ``UsageError`` naming what it is instead."""
    head = data[:64]
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            width, height = struct.unpack(">II", data[16:24])
            return "image/png", width, height
        if head.startswith(b"\xff\xd8\xff"):
            width, height = _jpeg_size(data)
            return "image/jpeg", width, height
        if head[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return "image/gif", width, height
        if head.startswith(b"BM"):
            return ("image/bmp", *_bmp_size(data))
    except struct.error:
        raise UsageError(f"{name} is cut short: its header ends early.") from None
    what = _other_format(head)
    formats = ", ".join(SUPPORTED.values())
    raise UsageError(f"{name} is {what}, which this model cannot read; use {formats}.")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise struct.error("no frame header")


def _bmp_size(data: bytes) -> tuple[int, int]:
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)


def _other_format(head: bytes) -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIC/AVIF image"
    if head.lstrip()[:5].lower() in (b"<?xml", b"<svg "):
        return "an SVG drawing"
    if head[:4] == b"%PDF":
        return "a PDF document"
    return "not an image (or in a format Hangar does not know)"
