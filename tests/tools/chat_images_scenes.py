"""Screenshot states of images in the chat (``tests/tools/screenshots.py``): a conversation whose message showed the
model two pictures (thumbnails in the transcript, the image tokens in the reply's stats), an image chip waiting in the
attachment row beside a file, the "vision" tag of the model bar; a model without its projector (the line beside the
chips and Send's refusal); and an image in a format the model cannot read."""

from __future__ import annotations

from typing import Any

from core.chat.store import MessageState
from core.engine.images import NO_PROJECTOR, ChatImage
from core.engine.protocol import GenerationStats


def picture(name: str, width: int, height: int, sky: str, sun: str) -> ChatImage:
    """A small drawn landscape (a sky, a sun, hills) as a PNG."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPainterPath

    from ui.pages.chat_images import image_from_qimage

    image = QImage(width, height, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    gradient = QLinearGradient(0, 0, 0, height)
    gradient.setColorAt(0, QColor(sky))
    gradient.setColorAt(1, QColor("#fde2b8"))
    painter.fillRect(image.rect(), gradient)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(sun))
    painter.drawEllipse(QPointF(width * 0.68, height * 0.42), height * 0.16, height * 0.16)
    for color, base, bump in (("#6b8f4e", 0.72, 0.22), ("#3f6b3a", 0.84, 0.16)):
        path = QPainterPath(QPointF(0, height))
        path.lineTo(0, height * base)
        path.cubicTo(width * 0.3, height * (base - bump), width * 0.6, height * (base + bump), width, height * base)
        path.lineTo(width, height)
        painter.setBrush(QColor(color))
        painter.drawPath(path)
    painter.end()
    return image_from_qimage(image, name)


def _conversation(page: Any) -> int:
    chats = page.service.chats
    conv = chats.create(title="Which photo for the poster?", model="")
    first = picture("lake-morning.png", 640, 420, "#7fb2e5", "#fff4c2")
    second = picture("lake-evening.png", 640, 420, "#e58f6f", "#ffd36b")
    question = "Which of these two would make the better poster, and why?"
    chats.add_message(conv.id, "user", question, images=(first, second))
    reply = chats.add_message(conv.id, "assistant", "", MessageState.STREAMING, model="gemma-3-4b-it-Q4_K_M")
    answer = (
        "The **evening** photo: the warm sky and the low sun give it one clear subject, and the dark hills leave "
        "calm space at the bottom for the title. The morning one is pleasant but flatter."
    )
    stats = GenerationStats(612, 41, 1450.0, 18.4, "stop", answer, image_tokens=512)
    chats.finish_message(reply.id, answer, MessageState.DONE, stats=stats)
    return conv.id


def images_in_chat(window: Any) -> None:
    """A message with two pictures, a reply that read them, and an image chip beside a file chip."""
    from core.chat.documents import Attachment

    window.show_page("chat")
    page = window.pages["chat"]
    conv = _conversation(page)
    page.conversations.refresh(select=conv)
    page.open_conversation(conv)
    page.vision_tag.show()  # as when a vision model is loaded (none is, in a screenshot)
    page.model_label.setText("gemma-3-4b-it-Q4_K_M · llama, CPU · 3.4 GB allocated (estimated 3.5 GB)")
    page.clear_attachments()
    page.attach(Attachment("poster-brief.txt", "/tmp/poster-brief.txt", "A3, portrait, title at the bottom."))
    page.attach_image(picture("lake-noon.png", 480, 320, "#5aa0e0", "#ffffff"))
    page.composer.setPlainText("And this third one?")


def no_projector(window: Any) -> None:
    """A model without its projector: the line beside the chip, and Send's refusal in the banner."""
    page = window.pages["chat"]
    page.vision_tag.hide()
    page.model_label.setText("Llama-3.2-3B-Instruct-Q4_K_M · llama, CPU · 2.1 GB allocated (estimated 2.2 GB)")
    page.clear_attachments()
    page._image_line(NO_PROJECTOR)
    page.show_banner(NO_PROJECTOR)


def image_refused(window: Any) -> None:
    """An image in a format the model cannot read: one line; the chat goes on."""
    page = window.pages["chat"]
    page.hide_banner()
    page.clear_images()
    page._image_line("holiday.webp is a WebP image, which this model cannot read; use PNG, JPEG, GIF, BMP.")


SCENES = [
    ("chat-images", images_in_chat),
    ("chat-images-no-projector", no_projector),
    ("chat-image-refused", image_refused),
]
