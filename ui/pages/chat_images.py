"""Images in the window's chat: dropped on the chat or the composer, pasted (Ctrl+V with image data), or chosen with
"Image…"; each is checked as the engine checks it (format and bounds, from its header) and shown as a chip with its
thumbnail until Send puts it in the message. A model without its projector is said in one line beside the chips, and
a bad image is one line too; the chat goes on either way."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from core.engine.images import MAX_IMAGES, NO_PROJECTOR, SUPPORTED, ChatImage, image_from_bytes, image_from_file
from core.errors import HangarError
from ui.theme import current_colors

if TYPE_CHECKING:
    from core.chat.service import ChatService
    from ui.widgets.responsive import FlowLayout

logger = logging.getLogger(__name__)

#: Files taken as images when dropped (the others go to the documents): every format the reader knows, and the
#: common ones it does not (named in one line as what they are, never read as text).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".svg"}
)
CHIP_THUMB = 28


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _local_paths(data: QMimeData) -> list[Path]:
    return [Path(u.toLocalFile()) for u in data.urls() if u.isLocalFile()] if data.hasUrls() else []


def thumbnail(image: ChatImage, side: int) -> QPixmap:
    """``image`` scaled to fit ``side`` pixels (an empty pixmap when Qt cannot decode it)."""
    pixmap = QPixmap()
    if not pixmap.loadFromData(image.data):
        return QPixmap()
    return pixmap.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def image_from_qimage(qimage: QImage, name: str = "pasted image.png") -> ChatImage:
    """Pasted image data (a ``QImage`` from the clipboard) as a PNG ``ChatImage``, checked."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    qimage.save(buffer, "PNG")
    buffer.close()
    return image_from_bytes(bytes(data.data()), name)


def image_tooltip(image: ChatImage) -> str:
    return f"{image.name}\n{image.width} × {image.height} pixels, {len(image.data) / 1024:,.0f} KB"


class ImageChip(QWidget):
    """An image attached to the next message: its thumbnail, its name, and a button to take it off."""

    removed = Signal(object)

    def __init__(self, image: ChatImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = image
        colors = current_colors()
        self.setObjectName("ImageChip")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            f"QWidget#ImageChip {{ border: 1px solid {colors.border}; border-radius: 10px;"
            f" background: {colors.surface}; }}"
        )
        self.thumb = QLabel()
        self.thumb.setPixmap(thumbnail(image, CHIP_THUMB))
        self.thumb.setFixedSize(CHIP_THUMB, CHIP_THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        name = image.name if len(image.name) <= 24 else image.name[:23] + "…"
        self.label = QLabel(name)
        self.setToolTip(image_tooltip(image) + "\nshown to the model with your message")
        close = QToolButton()
        close.setText("×")
        close.setAutoRaise(True)
        close.setToolTip(f"Do not send {image.name}")
        close.setAccessibleName(f"Remove {image.name}")
        close.clicked.connect(lambda: self.removed.emit(self))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(3, 2, 2, 2)
        layout.setSpacing(4)
        layout.addWidget(self.thumb)
        layout.addWidget(self.label)
        layout.addWidget(close)


class ImagesMixin:
    """Mixed into ``ChatPage`` (which provides ``service``, ``composer`` and the ``chips`` row)."""

    service: ChatService
    chips: FlowLayout

    def _build_images_bar(self) -> None:
        self.images: list[ChatImage] = []
        self.image_button = QToolButton()
        self.image_button.setText("Image…")
        self.image_button.setToolTip(
            "Attach an image for a vision model (PNG, JPEG, GIF, BMP); you can also drop or paste one"
        )
        self.image_button.setAccessibleName("Attach image")
        self.image_button.clicked.connect(self.choose_images)
        self.image_note = QLabel()  # one line: the model takes no images, or why an image was refused
        self.image_note.setObjectName("ImageNote")
        self.image_note.setWordWrap(True)  # a narrow window wraps it instead of widening the page
        self.image_note.hide()
        self.composer.image_pasted.connect(self._on_pasted)  # type: ignore[attr-defined]
        self.setAcceptDrops(True)  # type: ignore[attr-defined]  # images dropped anywhere on the chat

    # images dropped on the page (the composer takes every file itself; the window takes what the page leaves)
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(is_image_path(p) for p in _local_paths(event.mimeData())):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    dragMoveEvent = dragEnterEvent  # type: ignore[assignment]

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event.mimeData())
        if any(is_image_path(p) for p in paths):
            event.setDropAction(Qt.DropAction.CopyAction)  # never a move: the original stays where it was
            event.accept()
            self.handle_drop(paths)  # type: ignore[attr-defined]
        else:
            event.ignore()

    def choose_images(self) -> None:
        formats = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        paths, _ = QFileDialog.getOpenFileNames(
            self,  # type: ignore[arg-type]
            "Attach images",
            "",
            f"Images ({formats});;All files (*)",
        )
        self.attach_image_files([Path(p) for p in paths])

    def attach_image_files(self, paths: Sequence[Path]) -> None:
        """Check each file (header only, before anything decodes it) and add a chip; a bad one is one line."""
        for path in paths:
            try:
                self.attach_image(image_from_file(path))
            except HangarError as exc:
                self._image_line(str(exc))
                return

    def _on_pasted(self, qimage: QImage) -> None:
        try:
            self.attach_image(image_from_qimage(qimage, f"pasted image {len(self.images) + 1}.png"))
        except HangarError as exc:
            self._image_line(str(exc))

    def attach_image(self, image: ChatImage) -> None:
        if len(self.images) >= MAX_IMAGES:
            self._image_line(f"Up to {MAX_IMAGES} images go with one message.")
            return
        if any(i.data == image.data for i in self.images):
            return
        self.images.append(image)
        self.image_note.hide()  # a line about an earlier refused image is done with
        chip = ImageChip(image)
        chip.removed.connect(self._remove_image_chip)
        self.chips.addWidget(chip)
        self.refresh_image_note()

    def _remove_image_chip(self, chip: ImageChip) -> None:
        self.images = [i for i in self.images if i is not chip.image]
        chip.setParent(None)
        chip.deleteLater()
        self.refresh_image_note()

    def clear_images(self) -> None:
        for index in reversed(range(self.chips.count())):
            item = self.chips.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, ImageChip):
                self.chips.takeAt(index)
                widget.setParent(None)
                widget.deleteLater()
        self.images = []
        self.refresh_image_note()

    def refresh_image_note(self) -> None:
        """Beside the chips: the loaded model cannot read the attached images (Send refuses with this line)."""
        model = self.service.host.model
        if self.images and model is not None and not model.vision:
            self._image_line(NO_PROJECTOR)
        elif self.image_note.text() == NO_PROJECTOR or not self.images:
            self.image_note.hide()
            self.image_note.setText("")

    def _image_line(self, text: str) -> None:
        self.image_note.setText(" ".join(text.split()))
        self.image_note.setToolTip(f"Images the model reads: {', '.join(SUPPORTED.values())}")
        self.image_note.setStyleSheet(f"color: {current_colors().bad};")
        self.image_note.show()
