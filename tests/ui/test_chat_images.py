"""Images in the window's chat (issue 15) with the real generated tiny vision model (llama.cpp's mtmd projector): an
image dropped on the chat or pasted becomes a chip with its thumbnail, Send shows it to the model (its tokens counted
in the reply), the user message shows the thumbnail and keeps the image (reopened, regenerated); a model without
its projector and a bad image are one line each, nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDropEvent, QGuiApplication, QImage

from core.devkit.visiongen import TinyProjectorConfig, png_bytes, write_tiny_vision_model
from core.engine.images import NO_PROJECTOR
from ui.bridge import Bridge
from ui.pages.chat import ChatPage
from ui.pages.chat_images import ImageChip

WAIT = 90_000
IMAGE_TOKENS = TinyProjectorConfig().image_tokens
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = write_tiny_vision_model(tmp_path_factory.mktemp("vision"))
    return model


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "red square.png"
    path.write_bytes(png_bytes(48, 32))
    return path


def _page(qtbot, app, model: Path) -> ChatPage:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    widget = ChatPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    widget.add_model_path(str(model))
    with qtbot.waitSignal(widget.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
        widget.load_selected()
    assert widget.service.loaded is not None, widget.banner.text()
    widget.new_chat()
    return widget


@pytest.fixture
def page(qtbot, app, vision_model: Path) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    widget = _page(qtbot, app, vision_model)
    yield widget
    widget.shutdown()


def _drop(target, *paths: Path) -> QDropEvent:  # type: ignore[no-untyped-def]
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    target.dropEvent(event)
    return event


def _chips(page: ChatPage) -> list[ImageChip]:
    items = (page.chips.itemAt(i) for i in range(page.chips.count()))
    return [w for w in (item.widget() for item in items if item) if isinstance(w, ImageChip)]


def _send(qtbot, page: ChatPage, text: str):  # type: ignore[no-untyped-def]
    page.composer.setPlainText(text)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
    return blocker.args[0]


def test_a_dropped_image_is_shown_to_the_model_and_kept(qtbot, page: ChatPage, picture: Path) -> None:  # type: ignore[no-untyped-def]
    assert page.vision_tag.isVisibleTo(page)
    event = _drop(page, picture)  # dropped on the chat itself (the transcript), not only the composer
    assert event.isAccepted() and event.dropAction() == Qt.DropAction.CopyAction
    (chip,) = _chips(page)
    assert chip.label.text() == "red square.png" and not chip.thumb.pixmap().isNull()
    assert "48 × 32 pixels" in chip.toolTip()
    assert not page.image_note.isVisibleTo(page)

    reply = _send(qtbot, page, "What is in this picture?")
    assert reply.state == "done", reply.error
    assert reply.image_tokens == IMAGE_TOKENS and reply.prompt_tokens > IMAGE_TOKENS
    assert not _chips(page) and page.images == [] and page.composer.toPlainText() == ""
    user = page.service.chats.messages(page.conversation_id)[0]
    assert user.images[0].data == picture.read_bytes() and user.images[0].name == "red square.png"
    card = page.transcript.cards[user.id]
    assert len(card.thumbnails) == 1 and not card.thumbnails[0].pixmap().isNull()
    assert f"images: {IMAGE_TOKENS} tokens" in page.transcript.cards[reply.id].stats.text()

    # regenerate shows the model the stored image again
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.transcript.regenerate_requested.emit()
    assert blocker.args[0].image_tokens == IMAGE_TOKENS

    # reopened (another conversation first): the thumbnail is back, from the store
    conversation = page.conversation_id
    page.new_chat()
    assert not page.transcript.cards
    page.open_conversation(conversation)
    card = page.transcript.cards[user.id]
    assert len(card.thumbnails) == 1 and card.thumbnails[0].pixmap().width() > 0


def test_a_pasted_image_and_a_dropped_document_go_together(qtbot, page: ChatPage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = QImage(40, 40, QImage.Format.Format_RGB32)
    image.fill(QColor("royalblue"))
    QGuiApplication.clipboard().setImage(image)
    page.composer.setFocus()
    qtbot.keyClick(page.composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)  # Ctrl+V
    (chip,) = _chips(page)
    assert chip.image.mime == "image/png" and (chip.image.width, chip.image.height) == (40, 40)
    assert page.composer.toPlainText() == ""  # the image is not pasted as text

    note = tmp_path / "note.txt"
    note.write_text("The square is blue.")
    event = _drop(page.composer, note)
    assert event.isAccepted()
    qtbot.waitUntil(lambda: len(page.attachments) == 1, timeout=WAIT)
    assert len(_chips(page)) == 1  # the document's chip sits beside the image's

    reply = _send(qtbot, page, "Does the note match the picture?")
    assert reply.state == "done" and reply.image_tokens == IMAGE_TOKENS
    user = page.service.chats.messages(page.conversation_id)[0]
    assert len(user.images) == 1 and user.attachments[0]["name"] == "note.txt"
    assert page.attachments == [] and not _chips(page)


def test_a_bad_image_is_one_line_and_the_chat_goes_on(qtbot, page: ChatPage, picture: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    webp = tmp_path / "holiday.webp"
    webp.write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 64)
    huge = tmp_path / "poster.png"
    huge.write_bytes(png_bytes(1, 1)[:16] + (20_000).to_bytes(4, "big") * 2 + png_bytes(1, 1)[24:])
    _drop(page.composer, webp)
    assert page.image_note.isVisibleTo(page)
    assert page.image_note.text().startswith("holiday.webp is a WebP image, which this model cannot read")
    page.attach_image_files([huge])
    assert page.image_note.text().startswith("poster.png is 20,000 × 20,000 pixels")
    assert "\n" not in page.image_note.text() and not _chips(page)

    page.attach_image_files([picture])  # a good one after: the line goes, the chip comes
    assert not page.image_note.isVisibleTo(page) and len(_chips(page)) == 1
    reply = _send(qtbot, page, "And this one?")
    assert reply.state == "done" and reply.image_tokens == IMAGE_TOKENS


def test_a_model_without_projector_says_so_and_keeps_the_message(  # type: ignore[no-untyped-def]
    qtbot, app, tiny_gguf: Path, picture: Path
) -> None:
    page = _page(qtbot, app, tiny_gguf)
    try:
        assert not page.vision_tag.isVisibleTo(page)
        page.attach_image_files([picture])
        assert page.image_note.isVisibleTo(page) and page.image_note.text() == NO_PROJECTOR
        page.composer.setPlainText("What is this?")
        page.send_button.click()
        qtbot.waitUntil(lambda: page.banner.isVisibleTo(page), timeout=WAIT)
        assert page.banner.text().startswith(NO_PROJECTOR)
        assert page.composer.toPlainText() == "What is this?" and len(_chips(page)) == 1
        assert page.service.chats.messages(page.conversation_id) == []  # nothing stored, nothing lost
        assert page.send_button.isEnabled()

        (chip,) = _chips(page)
        chip.removed.emit(chip)  # without the image, the same message goes
        assert not page.image_note.isVisibleTo(page)
        reply = _send(qtbot, page, "What is this?")
        assert reply.state == "done" and not reply.image_tokens
    finally:
        page.shutdown()
