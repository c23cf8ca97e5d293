"""Search by meaning from the window (issue 15): "New collection…" offers the embedding models in My Models
(the first one chosen), indexes with its vectors through real llama.cpp, and the picker says the collection is
hybrid; with no embedding model it indexes full text only and says how to get one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from core.models.types import ImportMode
from tests.support.fixtures_library import write_embedding_gguf
from ui.bridge import Bridge
from ui.pages.chat import ChatPage
from ui.pages.chat_viewer import NO_EMBEDDING_HINT, NewCollectionDialog

WAIT = 90_000
CORPUS = Path(__file__).resolve().parents[1] / "support" / "docs_corpus"


@pytest.fixture
def page(qtbot, app) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    widget = ChatPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    widget.new_chat()
    yield widget
    widget.shutdown()


def _corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CORPUS, tmp_path / "notes", ignore=shutil.ignore_patterns("queries.json")))


def _index_through_the_dialog(qtbot, page: ChatPage, dialog: NewCollectionDialog, folder: Path) -> None:  # type: ignore[no-untyped-def]
    dialog.name.setText("notes")
    dialog.add_paths([folder])
    QTimer.singleShot(0, dialog.index_button.click)  # what the person does once the modal dialog is open
    page.new_collection(dialog)
    qtbot.waitUntil(lambda: "indexed" in page.docs_status.text(), timeout=WAIT)


def _tooltip(page: ChatPage, name: str) -> str:
    from PySide6.QtCore import Qt

    return str(page.docs_picker.itemData(page.docs_picker.findData(name), Qt.ItemDataRole.ToolTipRole))


@pytest.mark.slow
def test_an_embedding_model_in_my_models_indexes_by_meaning(qtbot, app, page: ChatPage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    embed = write_embedding_gguf(tmp_path / "models" / "tiny-embed-F16.gguf")
    assert not app.library.import_paths([embed.parent], ImportMode.LINK).problems
    dialog = NewCollectionDialog(page, embedding_models=page.embedding_models())
    assert dialog.meaning.isEnabled() and dialog.meaning.currentText() == "tiny-embed-F16"
    assert dialog.embed_model() is not None and dialog.embed_model().resolve() == embed.resolve()
    assert [dialog.meaning.itemText(i) for i in range(dialog.meaning.count())] == ["tiny-embed-F16", "Full text only"]
    assert not dialog.hint.isVisibleTo(dialog)

    _index_through_the_dialog(qtbot, page, dialog, _corpus(tmp_path))
    assert "search by meaning and words (tiny-embed-F16.gguf)" in page.docs_status.text()
    info = app.docs.index.info("notes")
    assert info.retrieval == "hybrid" and info.embed_model == str(embed.resolve()) and info.chunks >= 8
    assert page.docs_picker.currentData() == "notes" and "search by meaning" in _tooltip(page, "notes")
    found = app.docs.search("notes", "engine oil change")
    assert found.retrieval == "hybrid" and found.note is None and found.hits
    assert _vectors(app) == info.chunks  # every passage has its vector


def _vectors(app) -> int:  # type: ignore[no-untyped-def]
    row = app.store.query_one("SELECT COUNT(*) AS n FROM doc_chunks WHERE vector IS NOT NULL")
    return int(row["n"])


def test_without_an_embedding_model_full_text_only_and_a_hint(qtbot, app, page: ChatPage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = NewCollectionDialog(page, embedding_models=page.embedding_models())
    assert page.embedding_models() == []
    assert not dialog.meaning.isEnabled() and dialog.meaning.currentText() == "Full text only"
    assert dialog.embed_model() is None
    assert dialog.hint.isVisibleTo(dialog) and dialog.hint.text() == NO_EMBEDDING_HINT
    assert "Discover → ‘For your documents’" in NO_EMBEDDING_HINT

    _index_through_the_dialog(qtbot, page, dialog, _corpus(tmp_path))
    assert page.docs_status.text().startswith("notes: 8 file(s) indexed · full-text search only")
    info = app.docs.index.info("notes")
    assert info.retrieval == "full-text" and info.embed_model is None
    assert "full-text search only" in _tooltip(page, "notes")
    assert app.docs.search("notes", "engine oil change").retrieval == "full-text"
    assert _vectors(app) == 0


def test_my_models_tags_it_and_offers_no_chat(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ui.pages.models import ModelsPage
    from ui.widgets.library_table import COL_FORMAT

    write_embedding_gguf(tmp_path / "models" / "tiny-embed-F16.gguf")
    app.library.import_paths([tmp_path / "models"], ImportMode.LINK)
    page = ModelsPage(app, Bridge())
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.proxy.rowCount() == 1, timeout=10_000)
    assert page.proxy.index(0, COL_FORMAT).data() == "Embedding"
    page.table.selectRow(0)
    assert not page.chat_button.isEnabled()
    assert "embedding model" in page.details.values["Format"].text()
    page.search.setText("embedding")  # the capability is a word the filter finds
    qtbot.waitUntil(lambda: page.proxy.rowCount() == 1, timeout=5_000)
    page.search.setText("vision")
    qtbot.waitUntil(lambda: page.proxy.rowCount() == 0, timeout=5_000)
