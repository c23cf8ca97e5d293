"""The Chat page at the minimum window (field report #12 item 17): the side panels give way instead of widening
the page, the model line is one line that is never squeezed below its first word, long titles and names are cut
at the end with the whole text in a tooltip, and a reply's header and buttons wrap rather than being cut."""

from __future__ import annotations

from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QScrollArea

from core.chat.store import MessageState
from core.engine.protocol import GenerationStats
from ui.app import create_window

LONG_TITLE = "Weekend baking and weather planning for the sourdough starter and the picnic"
LONG_MODEL = "Qwen2.5-7B-Instruct-abliterated-uncensored-Q4_K_M"


def _window(qtbot, app, size=None):  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.resize(size or window.minimumSize())
    window.show()
    window.show_page("chat")
    for _ in range(3):
        QApplication.processEvents()
    return window, window.pages["chat"]


def _settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def _fits(window, page) -> None:  # type: ignore[no-untyped-def]
    holder: QScrollArea = window.stack.currentWidget()
    assert page.minimumSizeHint().width() <= holder.viewport().width()
    assert not holder.horizontalScrollBar().isVisible()


def test_the_settings_panel_gives_way_and_comes_back(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    window, page = _window(qtbot, app)
    assert page.conversations.isVisible() and not page.settings_panel.isVisible()
    assert page.chats_toggle.isChecked() and not page.settings_toggle.isChecked()
    # Asked for, the settings show; the list makes room and the page still fits.
    page.settings_toggle.click()
    _settle()
    assert page.settings_panel.isVisible() and not page.conversations.isVisible()
    assert page.settings_toggle.isChecked() and not page.chats_toggle.isChecked()
    _fits(window, page)
    # A wide window has room for both again.
    window.resize(1600, 1000)
    _settle()
    assert page.settings_panel.isVisible() and page.conversations.isVisible()
    # Switched off by hand, a panel stays off however wide the window.
    page.chats_toggle.click()
    window.resize(1700, 1000)
    _settle()
    assert not page.conversations.isVisible() and page.settings_panel.isVisible()


def test_no_model_loaded_reads_whole_words(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    _shown, page = _window(qtbot, app)
    label = page.model_label
    assert label.text() == "No model loaded"
    metrics = QFontMetrics(label.font())
    assert label.height() <= metrics.height() * 2  # one line
    assert label.width() >= metrics.horizontalAdvance("No")
    assert label.elided_text() == "No model loaded" or label.elided_text().startswith("No")
    # The center column never runs past the page's right edge.
    right = label.mapTo(page, label.rect().topRight()).x()
    assert right <= page.width()


def test_a_long_model_line_is_cut_at_the_end_with_its_details_in_the_tooltip(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    _shown, page = _window(qtbot, app)
    label = page.model_label
    line = f"{LONG_MODEL}.gguf · llama, CPU · 4.4 GiB allocated (estimated 4.6 GiB)"
    label.setText(line)
    _settle()
    metrics = QFontMetrics(label.font())
    assert label.height() <= metrics.height() * 2  # one line, not ten: the transcript keeps its room
    assert label.is_elided() and label.elided_text().endswith("…")
    assert line in label.toolTip()
    assert page.transcript.minimumHeight() >= 100


def test_a_long_conversation_title_is_cut_with_the_whole_title_in_the_tooltip(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    _shown, page = _window(qtbot, app)
    conversation = page.service.chats.create(title=LONG_TITLE)
    page.conversations.refresh(select=conversation.id)
    _settle()
    view = page.conversations.view
    index = view.model().index(0, 0)
    assert view.visualRect(index).width() <= view.viewport().width()
    assert not view.horizontalScrollBar().isVisible()
    assert LONG_TITLE in index.data(0x03)  # Qt.ToolTipRole
    assert QFontMetrics(view.font()).horizontalAdvance(LONG_TITLE) > view.viewport().width()  # it really is cut


def test_a_narrow_reply_keeps_its_model_stats_and_buttons_whole(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    _shown, page = _window(qtbot, app)
    chats = page.service.chats
    conversation = chats.create(title="Rain")
    chats.add_message(conversation.id, "user", "Will it rain?")
    reply = chats.add_message(conversation.id, "assistant", "", MessageState.STREAMING, model=LONG_MODEL)
    stats = GenerationStats(46, 112, 220.0, 32.0, "stop", "Probably not.")
    chats.finish_message(reply.id, "Probably not.", MessageState.DONE, stats=stats)
    page.conversations.refresh(select=conversation.id)
    page.open_conversation(conversation.id)
    _settle()
    card = page.transcript.cards[reply.id]
    metrics = QFontMetrics(card.stats.font())
    assert "first token 220 ms" in card.stats.text()
    assert card.stats.height() < metrics.height() * 2  # one line: never "first token 220 / ms"
    assert not card.stats.is_elided()
    assert card.model_caption.toolTip() == f"Written by {LONG_MODEL}"
    assert card.model_caption.elided_text() == LONG_MODEL or card.model_caption.elided_text().endswith("…")
    assert card.model_caption.width() >= QFontMetrics(card.model_caption.font()).horizontalAdvance("Qwen2.5…")
    for button in (card.copy_button, card.regenerate_button, card.continue_button):
        assert button.isVisible()
        assert button.width() >= button.sizeHint().width()
        assert button.mapTo(card, button.rect().topRight()).x() <= card.width()
