"""Documents in the window's chat (issue 15), with a real tiny llama.cpp model and a real SQLite index: a collection
indexed from the chat as a background job (progress, each skipped file named) and attached; a reply lists its
sources, and a citation opens the file with the cited lines highlighted; files dropped on the composer: a short one
as a chip sent whole, a long one indexed for retrieval, a binary one refused in one line."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from core.chat.documents import adhoc_collection
from ui.bridge import Bridge
from ui.pages.chat import ChatPage
from ui.pages.chat_viewer import NewCollectionDialog, SourceViewer

WAIT = 60_000
CORPUS = Path(__file__).resolve().parents[1] / "support" / "docs_corpus"
pytestmark = pytest.mark.slow


@pytest.fixture
def page(qtbot, app, tiny_gguf: Path) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    widget = ChatPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    widget.add_model_path(str(tiny_gguf))
    with qtbot.waitSignal(widget.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
        widget.load_selected()
    widget.new_chat()
    yield widget
    widget.shutdown()


def _send(qtbot, page: ChatPage, text: str):  # type: ignore[no-untyped-def]
    page.composer.setPlainText(text)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
    return blocker.args[0]


def _drop(page: ChatPage, *paths: Path) -> None:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    page.composer.dropEvent(event)
    assert event.isAccepted() and event.dropAction() == Qt.DropAction.CopyAction  # never a move


def test_collection_from_the_chat_and_citations(qtbot, page: ChatPage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = Path(shutil.copytree(CORPUS, tmp_path / "notes", ignore=shutil.ignore_patterns("queries.json")))
    (folder / "photo.bin").write_bytes(b"\x89PNG\x00\x00" * 50)

    dialog = NewCollectionDialog(page)
    dialog.index_button.click()
    assert dialog.error.text() == "Give the collection a name." and not dialog.result()
    dialog.name.setText("notes")
    dialog.add_paths([folder])
    assert dialog.chosen() == [folder]

    page.index_collection("notes", [folder], select=True)
    qtbot.waitUntil(lambda: "indexed" in page.docs_status.text(), timeout=WAIT)
    assert page.docs_status.text().startswith(
        "notes: 8 file(s) indexed · full-text search only · 1 skipped — photo.bin: a binary file"
    )
    assert page.docs_picker.currentData() == "notes"
    assert page.service.tool_store.options(page.conversation_id).collection == "notes"

    reply = _send(qtbot, page, "how long should sourdough dough rise")
    card = page.transcript.cards[reply.id]
    assert card.sources.isVisibleTo(card) and "[1] bread.md · lines 1-" in card.sources.text()

    card._on_source("source:1")  # what clicking the citation's link does
    viewer = page.viewer
    assert isinstance(viewer, SourceViewer) and viewer.isVisible()
    assert "rise for six hours" in viewer.highlighted_text() and viewer.first_line == 0
    assert viewer.open_button.text() == "Open in default app"
    viewer.close()

    conversation = page.conversation_id
    page.new_chat()
    assert page.docs_picker.currentData() == "notes"  # a new chat starts with the same documents
    page.open_conversation(conversation)
    assert "bread.md" in page.transcript.cards[reply.id].sources.text()  # citations kept


def test_dropped_files(qtbot, page: ChatPage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    short = shutil.copy(CORPUS / "bread.md", tmp_path / "bread.md")
    binary = tmp_path / "photo.bin"
    binary.write_bytes(b"\x89PNG\x00\x00" * 100)
    broken = tmp_path / "photo.png"  # named as an image: checked as one (tests/ui/test_chat_images.py)
    broken.write_bytes(b"\x89PNG\x00\x00" * 100)
    long_file = tmp_path / "pump-manual.txt"
    long_file.write_text("".join(f"Step {i}: the pump needs {i % 7} turns of the valve.\n" for i in range(4000)))

    _drop(page, Path(short))
    qtbot.waitUntil(lambda: len(page.attachments) == 1, timeout=WAIT)
    assert page.chips.itemAt(0).widget().label.text() == "bread.md"
    reply = _send(qtbot, page, "what is this file about?")
    user = next(m for m in page.service.chats.messages(page.conversation_id) if m.role == "user")
    assert user.attachments[0]["name"] == "bread.md" and page.attachments == [] and page.chips.count() == 0
    assert reply.prompt_tokens and reply.prompt_tokens > 60  # the file went with the message

    _drop(page, binary)
    qtbot.waitUntil(lambda: "binary" in page.docs_status.text(), timeout=WAIT)
    assert page.docs_status.text() == "photo.bin: a binary file, not text." and page.attachments == []
    _drop(page, broken)
    assert page.image_note.text().startswith("photo.png is not an image") and page.images == []

    _drop(page, long_file)
    qtbot.waitUntil(lambda: "file(s) indexed" in page.docs_status.text(), timeout=WAIT)
    assert page.attachments == []  # long: retrieved, not attached
    reply = _send(qtbot, page, "how many turns of the valve at step 12?")
    assert reply.sources and Path(str(reply.sources[0]["path"])).name == "pump-manual.txt"

    conversation = page.conversation_id
    page.conversations.deleted.emit(conversation)  # deleting the chat deletes its own collection
    assert adhoc_collection(conversation) not in {c.name for c in page.app.docs.index.collections()}


def test_the_viewer_scrolls_to_a_cited_place_deep_in_a_file(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "notes.txt"
    log.write_text("".join(f"line {i}\n" for i in range(1, 2001)))
    source = {"n": 1, "path": str(log), "place": "lines 1500-1502", "first_line": 1500, "last_line": 1502, "text": ""}
    viewer = SourceViewer(source)
    qtbot.addWidget(viewer)
    viewer.show()
    assert viewer.highlighted_text() == "line 1500\nline 1501\nline 1502"
    top = viewer.text.cursorForPosition(viewer.text.viewport().rect().topLeft()).block().blockNumber()
    assert 1400 < top <= 1499  # the cited lines in view, not the start of the file

    log.unlink()  # the file is gone since the reply: said in place, the passage still shown
    gone = SourceViewer({**source, "text": "line 1500"})
    qtbot.addWidget(gone)
    assert gone.error.text().startswith("The file cannot be shown now") and gone.text.toPlainText() == "line 1500"
