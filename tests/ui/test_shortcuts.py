"""Keyboard shortcuts of the real window, pressed as keys: Ctrl+1..6 and Ctrl+, switch pages, Ctrl+K / Ctrl+F
focus the current page's search or filter box, F5 refreshes (My Models rescan, Hardware detect, Discover retry)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.support.hub import LocalHub
from ui.app import create_window
from ui.main_window import PAGES

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def window(qtbot, app):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    # Window shortcuts only fire for the active window.
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=2000)
    return win


def test_ctrl_digits_and_ctrl_comma_switch_pages(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    for index, (key, *_rest) in enumerate(PAGES[:6]):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + index), CTRL)
        assert window.current_page_key() == key
    qtbot.keyClick(window, Qt.Key.Key_Comma, CTRL)
    assert window.current_page_key() == "settings"


@pytest.mark.parametrize(("page_key", "key"), [("discover", Qt.Key.Key_K), ("models", Qt.Key.Key_F)])
def test_ctrl_k_and_ctrl_f_focus_the_search_box(window, qtbot, page_key: str, key: Qt.Key) -> None:  # type: ignore[no-untyped-def]
    window.show_page(page_key)
    page = window.pages[page_key]
    page.search.setText("llama")
    window.nav.setFocus()
    assert not page.search.hasFocus()
    qtbot.keyClick(window.nav, key, CTRL)
    assert page.search.hasFocus()
    assert page.search.selectedText() == "llama"  # typing replaces the old search
    assert "Ctrl+K" in page.search.toolTip()


def test_ctrl_k_on_a_page_without_search_does_nothing(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.show_page("settings")
    focused = QApplication.focusWidget()
    qtbot.keyClick(window.nav, Qt.Key.Key_K, CTRL)
    assert window.current_page_key() == "settings"
    assert QApplication.focusWidget() is focused
    assert not window.trigger_page_action("focus_search")


def test_f5_rescans_my_models(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.show_page("models")
    page = window.pages["models"]
    qtbot.waitUntil(page.rescan_button.isEnabled, timeout=10_000)  # the scan at start-up
    with qtbot.waitSignal(page.scan_finished, timeout=10_000):
        qtbot.keyClick(window.nav, Qt.Key.Key_F5)
        assert not page.rescan_button.isEnabled()
    assert "F5" in page.rescan_button.toolTip()


def test_f5_detects_the_hardware_again(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.show_page("hardware")
    page = window.pages["hardware"]
    qtbot.waitUntil(page.refresh_button.isEnabled, timeout=10_000)
    page.system_label.setText("stale")
    qtbot.keyClick(window.nav, Qt.Key.Key_F5)
    assert not page.refresh_button.isEnabled()  # detection started
    qtbot.waitUntil(page.refresh_button.isEnabled, timeout=10_000)
    assert page.system_label.text() != "stale"
    assert "F5" in page.refresh_button.toolTip()


def test_f5_retries_a_failed_search_on_discover(window, qtbot, hub: LocalHub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window.show_page("discover")
    page = window.pages["discover"]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    page.search.setText("chatter")
    page.search_now()
    qtbot.waitUntil(lambda: page.results_message.retry.isVisible(), timeout=15_000)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    qtbot.keyClick(window.nav, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: page.results_model.rowCount() > 0, timeout=10_000)
    assert not page.results_message.isVisible()
    assert "F5" in page.results_message.retry.toolTip()


def test_chat_ctrl_k_searches_conversations_and_ctrl_n_starts_one(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.show_page("chat")
    page = window.pages["chat"]
    qtbot.keyClick(window, Qt.Key.Key_K, CTRL)
    qtbot.waitUntil(lambda: page.conversations.search.hasFocus(), timeout=2000)
    before = page.conversations.model.rowCount()
    qtbot.keyClick(page.conversations.search, Qt.Key.Key_N, CTRL)
    qtbot.waitUntil(lambda: page.conversations.model.rowCount() == before + 1, timeout=2000)
    assert page.conversation_id is not None
    assert page.composer.hasFocus()
