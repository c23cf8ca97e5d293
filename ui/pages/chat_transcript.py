"""The conversation view: one card per message (Markdown with highlighted code and copy links), its stats and
its actions, in a scroll area that follows the newest text while you are at the bottom."""

from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.chat.store import Message, MessageState
from core.chat.tools import ToolCallEntry
from ui.pages.chat_markdown import COPY_SCHEME, MarkdownRenderer
from ui.pages.chat_tool_card import ToolCallCard
from ui.qtfix import emit
from ui.theme import current_colors
from ui.widgets.responsive import ElidedLabel, FlowLayout

SOURCE_SCHEME = "source:"
#: The largest side of an image's thumbnail in a message, in pixels.
THUMBNAIL = 120
#: Streamed text is redrawn at most this often (about 30 times a second) ...
FRAME_MS = 33
#: ... and never takes more than this share of the GUI thread (long replies redraw less often).
MAX_RENDER_SHARE = 0.3


def stats_text(message: Message) -> str:
    parts = []
    if message.completion_tokens:
        parts.append(f"{message.completion_tokens} tokens")
    if message.tokens_per_second:
        parts.append(f"{message.tokens_per_second:.1f} tok/s")
    if message.time_to_first_token_ms:
        parts.append(f"first token {message.time_to_first_token_ms:.0f} ms")
    if message.image_tokens:
        parts.append(f"images: {message.image_tokens} tokens")
    return " · ".join(parts)


class MessageCard(QFrame):
    """One message. Actions are signals; the page decides what they do."""

    copy_requested = Signal(str)
    edit_requested = Signal(int)
    regenerate_requested = Signal()
    continue_requested = Signal()
    #: A pending tool call was answered: (call id, ``Approval``).
    tool_answered = Signal(int, object)
    #: A citation was clicked: (message id, source number).
    source_requested = Signal(int, int)

    def __init__(self, message: Message, renderer: MarkdownRenderer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.tool_cards: dict[int, ToolCallCard] = {}
        self._renderer = renderer
        self._code: tuple[str, ...] = ()
        self._shown: str | None = None  # the text the body shows, to skip redrawing unchanged text
        self.is_last = False
        self.setObjectName("ChatMessage")
        colors = current_colors()
        background = colors.surface if message.role == "assistant" else colors.window
        self.setStyleSheet(
            f"QFrame#ChatMessage {{ background: {background}; border: 1px solid {colors.border}; border-radius: 8px; }}"
        )
        self.role = QLabel("You" if message.role == "user" else "Assistant")
        self.role.setStyleSheet("font-weight: 600;")
        # each reply names the model that wrote it (a small muted caption; kept when the chat is reopened)
        # Role, model and stats share a line while they fit; in a narrow card the stats move to a line of their own,
        # and a name or stats wider than the card are cut at the end with the whole text in the tooltip.
        self.model_caption = ElidedLabel()
        self.model_caption.setSizePolicy(
            QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred
        )  # a line wraps whole
        self.model_caption.setObjectName("ChatModelCaption")
        self.model_caption.setStyleSheet(f"color: {colors.muted}; font-size: 11px;")
        self.stats = ElidedLabel()
        self.stats.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)  # a line wraps whole
        self.stats.setStyleSheet(f"color: {colors.muted};")
        self.body = QLabel()
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.body.setOpenExternalLinks(False)
        self.body.linkActivated.connect(self._on_link)
        self.sources = QLabel()  # the reply's citations: file name and place, each opens the file there
        self.sources.setObjectName("ChatSources")
        self.sources.setWordWrap(True)
        self.sources.setTextFormat(Qt.TextFormat.RichText)
        self.sources.linkActivated.connect(self._on_source)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setObjectName("ChatError")
        self.error.setStyleSheet(f"color: {colors.bad};")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setFlat(True)
        self.copy_button.clicked.connect(self._copy_all)
        self.edit_button = QPushButton("Edit")
        self.edit_button.setFlat(True)
        self.edit_button.clicked.connect(self._edit)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setFlat(True)
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setFlat(True)
        self.continue_button.clicked.connect(self.continue_requested)
        header = FlowLayout(spacing=10, line_spacing=2)
        header.addWidget(self.role)
        header.addWidget(self.model_caption)
        header.addWidget(self.stats)
        actions = FlowLayout(spacing=6, line_spacing=4)  # a narrow card wraps its buttons ("Continue" is never cut)
        for button in (self.copy_button, self.edit_button, self.regenerate_button, self.continue_button):
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 6)
        layout.addLayout(header)
        self.tool_area = QVBoxLayout()  # the reply's tool calls, before its words
        self.tool_area.setSpacing(6)
        layout.addLayout(self.tool_area)
        self.thumbnails: list[QLabel] = []  # the images the message showed the model, before its words
        if message.images:
            layout.addLayout(self._image_row(message))
        layout.addWidget(self.body)
        layout.addWidget(self.sources)
        layout.addWidget(self.error)
        layout.addLayout(actions)
        self.set_message(message, last=False)

    def set_message(self, message: Message, *, last: bool) -> None:
        self.message = message
        self.is_last = last
        self.set_text(message.content)
        named = message.role == "assistant" and bool(message.model)
        self.model_caption.setText(message.model or "" if named else "")
        if named:
            self.model_caption.setToolTip(f"Written by {message.model}")
        self.model_caption.setVisible(named)
        self._show_sources(message)
        streaming = message.state == MessageState.STREAMING
        self.stats.setText("writing…" if streaming else stats_text(message))
        problem = {
            MessageState.FAILED: message.error or "The reply failed.",
            MessageState.INTERRUPTED: message.error or "Hangar closed while this reply was being written.",
            MessageState.STOPPED: "Stopped.",
        }.get(message.state, "")
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        is_assistant = message.role == "assistant"
        self.edit_button.setVisible(message.role == "user" and not streaming)
        self.regenerate_button.setVisible(is_assistant and last and not streaming)
        self.continue_button.setVisible(is_assistant and last and not streaming and bool(message.content))
        self.copy_button.setVisible(not streaming)

    def _image_row(self, message: Message) -> QHBoxLayout:
        from ui.pages.chat_images import image_tooltip, thumbnail

        row = QHBoxLayout()
        row.setSpacing(6)
        colors = current_colors()
        for image in message.images:
            label = QLabel()
            label.setObjectName("ChatThumbnail")
            pixmap = thumbnail(image, THUMBNAIL)
            if pixmap.isNull():
                label.setText(image.name)
            else:
                label.setPixmap(pixmap)
            label.setStyleSheet(f"border: 1px solid {colors.border}; border-radius: 4px; padding: 2px;")
            label.setToolTip(image_tooltip(image))
            label.setAccessibleName(f"Image {image.name}")
            row.addWidget(label)
            self.thumbnails.append(label)
        row.addStretch(1)
        return row

    def _show_sources(self, message: Message) -> None:
        if not message.sources:
            self.sources.hide()
            return
        colors = current_colors()
        links = []
        for source in message.sources:
            name = html.escape(Path(str(source.get("path", ""))).name)
            place = html.escape(str(source.get("place") or ""))
            label = f"[{source.get('n')}] {name}" + (f" · {place}" if place else "")
            links.append(f"<a href='{SOURCE_SCHEME}{source.get('n')}' style='color: {colors.accent};'>{label}</a>")
        self.sources.setText(f"<span style='color: {colors.muted};'>Sources:</span> " + " &nbsp; ".join(links))
        self.sources.setToolTip("Click a source to see the passage in its file")
        self.sources.show()

    def _on_source(self, link: str) -> None:
        if link.startswith(SOURCE_SCHEME):
            emit(self.source_requested, self.message.id, int(link[len(SOURCE_SCHEME) :]))

    def set_call(self, entry: ToolCallEntry) -> ToolCallCard:
        card = self.tool_cards.get(entry.id)
        if card is None:
            card = ToolCallCard(entry)
            card.answered.connect(self.tool_answered)
            self.tool_area.addWidget(card)
            self.tool_cards[entry.id] = card
        else:
            card.set_entry(entry)
        self.body.setVisible(bool(self._shown) or not self.tool_cards)
        return card

    def set_text(self, text: str) -> None:
        if text == self._shown:
            return
        self._shown = text
        if self.message.role == "user":
            # your own words are shown as typed, not interpreted as Markdown
            self.body.setText("<p style='white-space: pre-wrap;'>" + _escape(text) + "</p>")
            self._code = ()
            return
        rendered = self._renderer.render(text)
        self._code = rendered.code_blocks
        self.body.setText(rendered.html or "<p>&nbsp;</p>")
        self.body.setVisible(bool(text) or not self.tool_cards)

    # slots return nothing (a value returned to PySide from a slot is a needless refcount hazard)
    def _copy_all(self) -> None:
        emit(self.copy_requested, self.message.content)

    def _edit(self) -> None:
        emit(self.edit_requested, self.message.id)

    def _on_link(self, link: str) -> None:
        if link.startswith(COPY_SCHEME):
            index = int(link[len(COPY_SCHEME) :])
            if 0 <= index < len(self._code):
                emit(self.copy_requested, self._code[index])


class TranscriptView(QScrollArea):
    """All messages of the open conversation; streamed text is coalesced into at most ~30 redraws a second."""

    copy_requested = Signal(str)
    edit_requested = Signal(int)
    regenerate_requested = Signal()
    continue_requested = Signal()
    tool_answered = Signal(int, object)
    source_requested = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMinimumHeight(160)  # never a sliver: a short window scrolls the page instead
        # long lines wrap (code too): the transcript never scrolls sideways
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._container = QWidget()
        self._layout = QVBoxLayout(self._container)
        self._layout.setContentsMargins(0, 0, 8, 0)
        self._layout.setSpacing(10)
        self._layout.addStretch(1)
        self.setWidget(self._container)
        self.cards: dict[int, MessageCard] = {}
        self._renderer = MarkdownRenderer(dark=_is_dark())
        self._streamed: dict[int, str] = {}
        self._dirty: set[int] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._flush)
        self._follow = True
        self.verticalScrollBar().rangeChanged.connect(self._keep_at_bottom)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.redraws = 0  # for tests and the GUI benchmark

    def set_calls(self, calls: dict[int, list[ToolCallEntry]]) -> None:
        """The tool calls of the shown messages (by message id), as stored."""
        for message_id, entries in calls.items():
            for entry in entries:
                self.upsert_call(entry)
            card = self.cards.get(message_id)
            if card is not None:
                card.body.setVisible(bool(card.message.content) or not card.tool_cards)

    def upsert_call(self, entry: ToolCallEntry) -> None:
        card = self.cards.get(entry.message_id)
        if card is not None:
            card.set_call(entry)

    def set_messages(self, messages: list[Message]) -> None:
        self._timer.stop()
        self._streamed.clear()
        self._dirty.clear()
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards.clear()
        for message in messages:
            self._add(message)
        self._refresh_last()
        self._follow = True

    def upsert(self, message: Message) -> None:
        """Add a message, or show its new state (finished, failed, ...)."""
        self._streamed.pop(message.id, None)
        self._dirty.discard(message.id)
        if message.id in self.cards:
            card = self.cards[message.id]
            card.set_message(message, last=card.is_last)
        else:
            self._add(message)
        self._refresh_last()

    def remove_from(self, position: int) -> None:
        for message_id, card in list(self.cards.items()):
            if card.message.position >= position:
                card.setParent(None)
                card.deleteLater()
                del self.cards[message_id]

    def append_stream(self, message_id: int, text: str) -> None:
        """Streamed text arrives here (cheap); the card is redrawn by the frame timer."""
        card = self.cards.get(message_id)
        if card is None:
            return
        self._streamed[message_id] = self._streamed.get(message_id, card.message.content) + text
        self._dirty.add(message_id)
        if not self._timer.isActive():
            self._timer.start(FRAME_MS)

    def streamed_text(self, message_id: int) -> str:
        return self._streamed.get(message_id, "")

    def _flush(self) -> None:
        started = time.perf_counter()
        for message_id in list(self._dirty):
            card = self.cards.get(message_id)
            if card is not None:
                card.set_text(self._streamed[message_id])
                self.redraws += 1
        self._dirty.clear()
        spent_ms = (time.perf_counter() - started) * 1000
        # a long reply takes longer to lay out: wait proportionally longer before the next redraw
        self._next_frame_ms = max(FRAME_MS, int(spent_ms / MAX_RENDER_SHARE))
        self._timer.setInterval(self._next_frame_ms)

    def _add(self, message: Message) -> None:
        card = MessageCard(message, self._renderer)
        card.copy_requested.connect(self.copy_requested)
        card.edit_requested.connect(self.edit_requested)
        card.regenerate_requested.connect(self.regenerate_requested)
        card.continue_requested.connect(self.continue_requested)
        card.tool_answered.connect(self.tool_answered)
        card.source_requested.connect(self.source_requested)
        self._layout.insertWidget(self._layout.count() - 1, card)
        self.cards[message.id] = card

    def _refresh_last(self) -> None:
        if not self.cards:
            return
        ordered = sorted(self.cards.values(), key=lambda c: c.message.position)
        for card in ordered:
            last = card is ordered[-1]
            if card.is_last != last:  # only the old and the new last card change their actions
                card.set_message(card.message, last=last)
                if card.message.id in self._streamed:
                    card.set_text(self._streamed[card.message.id])

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 24

    def _keep_at_bottom(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)


def copy_to_clipboard(text: str) -> None:
    clipboard = QGuiApplication.clipboard()
    if clipboard is not None:
        clipboard.setText(text)


def _escape(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>")


def _is_dark() -> bool:
    from PySide6.QtGui import QColor

    return QColor(current_colors().window).lightness() < 128
