"""The window at its minimum size (field report item 17): every page's buttons show their whole text and lie
inside the window (forms scroll rather than push them off), and the size is remembered across restarts."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QAbstractButton, QApplication, QScrollArea

from ui.app import create_window
from ui.main_window import PAGES


def _visible_rect_in_window(widget, window) -> QRect:  # type: ignore[no-untyped-def]
    """The part of ``widget`` that can be seen: clipped by every scroll area on the way up."""
    top_left = widget.mapTo(window, QPoint(0, 0))
    rect = QRect(top_left, widget.size())
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if isinstance(parent, QScrollArea):
            return QRect()  # inside a scroll area: reachable by scrolling, never cut off for good
        parent = parent.parentWidget()
    return rect


@pytest.mark.parametrize("key", [k for k, *_ in PAGES])
def test_buttons_fit_at_the_minimum_size(qtbot, app, key: str) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.resize(window.minimumSize())
    window.show()
    window.show_page(key)
    qtbot.wait(50)
    QApplication.processEvents()
    page = window.pages[key]
    area = window.centralWidget().rect()
    problems = []
    for button in page.findChildren(QAbstractButton):
        if not button.isVisibleTo(window) or not button.text():
            continue
        text_width = QFontMetrics(button.font()).horizontalAdvance(button.text().replace("&", ""))
        if button.width() < text_width:
            problems.append(f"{button.text()!r} is {button.width()} px wide for {text_width} px of text")
        rect = _visible_rect_in_window(button, window)
        if not rect.isNull() and not area.contains(rect):
            problems.append(f"{button.text()!r} lies outside the window at {rect.getRect()}")
    # A page never gets less than it needs: below that it scrolls (whole, every control reachable), never cut.
    need = page.minimumSizeHint()
    if page.width() < need.width() or page.height() < need.height():
        problems.append(f"the page is {page.size().toTuple()} but needs {need.toTuple()}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("key", [k for k, *_ in PAGES])
def test_no_page_scrolls_sideways_at_the_default_size(qtbot, app, key: str) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.resize(1180, 760)
    window.show()
    window.show_page(key)
    QApplication.processEvents()
    holder = window.stack.currentWidget()
    assert not holder.horizontalScrollBar().isVisible(), window.pages[key].minimumSizeHint()


def test_the_window_size_is_remembered(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.show()
    window.resize(1234, 777)
    window.close()
    again = create_window(app)
    qtbot.addWidget(again)
    assert (again.width(), again.height()) == (1234, 777)
    assert again.minimumWidth() <= 960 and again.minimumHeight() <= 640


def test_long_names_are_cut_at_the_end_with_the_whole_name_in_the_tooltip(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    """Two repos cut in the middle ("lmquant/Qw…truct-GGUF") read alike; cut at the end they differ."""
    from PySide6.QtCore import Qt

    window = create_window(app)
    qtbot.addWidget(window)
    window.show_page("models")
    views = [window.pages["discover"].results, window.pages["discover"].detail.files, window.pages["models"].table]
    assert all(view.textElideMode() == Qt.TextElideMode.ElideRight for view in views)
