"""Drag and drop onto the window (field report item 25): the overlay says what will be imported while dragging,
a drop is accepted as a copy or a link and never as a move (a file manager would delete the original), and the
file dialog opens in the folder models last came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from tests.support.fixtures_library import write_gguf
from ui.app import create_window

MOVE, COPY, LINK = Qt.DropAction.MoveAction, Qt.DropAction.CopyAction, Qt.DropAction.LinkAction


@pytest.fixture
def window(qtbot, app):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.show()
    page = win.pages["models"]
    qtbot.waitUntil(lambda: page.attached, timeout=5000)
    return win


def _mime(paths: list[Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def test_the_overlay_names_what_is_dragged(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = write_gguf(tmp_path / "dragged-model.gguf", seed=1)
    mime = _mime([model])  # kept alive: the event holds only a pointer to it
    enter = QDragEnterEvent(
        QPoint(300, 300), COPY | MOVE, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    overlay = window.pages["models"].overlay
    assert overlay.isVisible()
    assert "1 item" in overlay.text and "dragged-model.gguf" in overlay.detail and "never moved" in overlay.detail


@pytest.mark.parametrize(("offered", "expected"), [(COPY | MOVE, COPY), (MOVE | LINK, LINK), (MOVE, None)])
def test_drops_are_copies_or_links_never_moves(window, tmp_path: Path, offered, expected) -> None:  # type: ignore[no-untyped-def]
    model = write_gguf(tmp_path / "m.gguf", seed=1)
    mime = _mime([model])
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(300, 300), offered, mime, buttons, mods)
    QApplication.sendEvent(window, enter)
    move = QDragMoveEvent(QPoint(310, 310), offered, mime, buttons, mods)
    QApplication.sendEvent(window, move)
    drop = QDropEvent(QPointF(310, 310), offered, mime, buttons, mods)
    QApplication.sendEvent(window, drop)
    if expected is None:
        assert not enter.isAccepted() and not drop.isAccepted()
    else:
        assert enter.isAccepted() and enter.dropAction() == expected
        assert move.dropAction() == expected
        assert drop.isAccepted() and drop.dropAction() == expected
    window.pages["models"].overlay.hide()


def test_the_file_dialog_opens_where_models_last_came_from(window, qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    assert page.last_folder() == str(Path.home())
    folder = tmp_path / "my-models"
    folder.mkdir()
    page.start_import([write_gguf(folder / "a.gguf", seed=1)])
    assert page.last_folder() == str(folder)
    again = create_window(app)  # a restart
    qtbot.addWidget(again)
    assert again.pages["models"].last_folder() == str(folder)
