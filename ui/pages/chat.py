"""The Chat page: conversations on the left, the model bar, the transcript and the composer in the middle, the
settings panel on the right. Work goes through ``core.chat.service`` (engine in a child process); events reach
the widgets through the bridge, and every failure is explained in place with the conversation kept."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core.chat.models import memory_advice
from core.chat.service import ChatService, ModelChoice
from core.chat.session import ContextUsage, ReplyDelta, ReplyFinished, ReplyStarted
from core.chat.store import ChatSettings, Message
from core.engine.protocol import (
    EngineCrashed,
    EngineRecovering,
    LoadProgress,
    ModelLoaded,
    ModelUnloaded,
    RequestFailed,
)
from core.errors import CancelledError, InsufficientMemoryError
from ui.operations import run_in_background
from ui.pages.chat_docs_bar import ComposerEdit, DocsBarMixin
from ui.pages.chat_images import ImagesMixin
from ui.pages.chat_layout import SidePanels
from ui.pages.chat_list import ConversationColumn
from ui.pages.chat_model_bar import ModelBarMixin
from ui.pages.chat_settings import ChatSettingsPanel
from ui.pages.chat_tools_bar import ToolsBarMixin
from ui.pages.chat_transcript import TranscriptView, copy_to_clipboard
from ui.qtfix import emit
from ui.theme import current_colors
from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)


class ChatPage(ImagesMixin, DocsBarMixin, ToolsBarMixin, ModelBarMixin, Page):
    #: A reply ended (for tests and the status bar): the final message.
    reply_finished = Signal(object)
    #: The model bar changed: "loading", "loaded", "failed", "unloaded", "crashed".
    model_state_changed = Signal(str)

    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Chat", "Talk to a local model. Nothing leaves this machine.", parent)
        self.app = app
        self.bridge = bridge
        self.service: ChatService = app.chat
        self.conversation_id: int | None = None
        self.editing_id: int | None = None
        self._load_request: int | None = None
        #: Send was pressed with no model loaded: the selected model is loading, and the message goes when it is in.
        self._send_after_load = False
        self._hooked: set[int] = set()
        self._extra_models: list[str] = []

        self.conversations = ConversationColumn(self.service.chats)
        self.settings_panel = ChatSettingsPanel()
        self._build_model_bar()
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setObjectName("ChatBanner")
        self.banner.hide()
        self.banner_action = QPushButton()
        self.banner_action.setToolTip("Do what the message beside it suggests")
        self.banner_action.setAccessibleName("Suggested action")
        self.banner_action.hide()
        self._banner_callback: Any = None
        self.banner_action.clicked.connect(self._on_banner_action)
        banner_row = QHBoxLayout()
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.banner_action)
        self.transcript = TranscriptView()
        self.empty = EmptyState("chat", "No conversation open", "Choose a model above, load it, and start a new chat.")
        self.center_stack = QStackedWidget()
        self.center_stack.addWidget(self.empty)
        self.center_stack.addWidget(self.transcript)
        self.meter = QProgressBar()
        self.meter.setRange(0, 1000)
        self.meter.setTextVisible(False)
        self.meter.setFixedHeight(6)
        self.meter_label = QLabel("Context: —")
        self.editing_label = QLabel("Editing a message — Send resends it, Esc cancels.")
        self.editing_label.hide()
        self.composer = ComposerEdit()
        self.composer.setPlaceholderText("Message (Ctrl+Enter to send)")
        self.composer.setToolTip("Write your message; Ctrl+Enter sends it")
        self.composer.setAccessibleName("Message")
        self.composer.setFixedHeight(84)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("Primary")
        self.send_button.setToolTip("Send the message to the model (Ctrl+Enter)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.setEnabled(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        self._build_tools_bar()
        self._build_docs_bar()
        self._build_images_bar()
        self.extras_row = QHBoxLayout()  # tools, documents, images, and the files and images for the next message
        for widget in (self.tools_button, self.docs_picker, self.image_button):
            self.extras_row.addWidget(widget)
        self.extras_row.addStretch(1)
        composer_row = QHBoxLayout()
        composer_row.addWidget(self.composer, 1)
        composer_row.addLayout(buttons)

        self.center = QWidget()  # the model bar, the transcript and the composer: the panels beside it give way
        center = QVBoxLayout(self.center)
        center.setContentsMargins(0, 0, 0, 0)
        center.addLayout(self.model_bar)
        center.addLayout(banner_row)
        center.addWidget(self.center_stack, 1)
        center.addWidget(self.meter)
        center.addWidget(self.meter_label)
        center.addWidget(self.editing_label)
        center.addLayout(self.extras_row)
        center.addWidget(self.chips_row)
        for line in (self.tools_status, self.docs_status, self.image_note):  # what they say, each on its own lines
            center.addWidget(line)
        center.addLayout(composer_row)
        row = QHBoxLayout()
        row.addWidget(self.conversations)
        row.addWidget(self.center, 1)
        row.addWidget(self.settings_panel)
        self.body.addLayout(row, 1)
        self.side_panels = SidePanels(
            self,
            row,
            self.center,
            [(self.conversations, self.chats_toggle), (self.settings_panel, self.settings_toggle)],
        )

        self.conversations.selected.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_chat)
        self.conversations.deleted.connect(self._on_deleted)
        self.settings_panel.changed.connect(self._on_settings_changed)
        self.transcript.copy_requested.connect(self._copy)
        self.transcript.edit_requested.connect(self.start_edit)
        self.transcript.regenerate_requested.connect(lambda: self._act("regenerate"))
        self.transcript.continue_requested.connect(lambda: self._act("continue"))
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        QShortcut(QKeySequence("Ctrl+Return"), self.composer, activated=self.send)
        new_chat = QShortcut(QKeySequence.StandardKey.New, self, activated=self.new_chat)
        new_chat.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.on_escape)
        escape.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        bridge.connect_hook(self.service.host.events, self._on_engine_event)
        self.refresh_models()
        self._set_model_label()

    # -- model bar ------------------------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        extra = list(self._extra_models)
        run_in_background(
            lambda: self.service.choices(extra),
            on_success=self._show_choices,
            on_failure=lambda exc: logger.warning("model list failed: %s", exc),
            owner=self,
        )

    def _show_choices(self, choices: list[ModelChoice]) -> None:
        current = self.model_picker.currentData()
        self.model_picker.clear()
        for choice in choices:
            label = f"{choice.name} — {choice.badge}" if choice.badge else choice.name
            self.model_picker.addItem(label, str(choice.path))
            if not choice.fits:
                self.model_picker.setItemData(
                    self.model_picker.count() - 1, current_colors().bad, Qt.ItemDataRole.ForegroundRole
                )
        index = self.model_picker.findData(current) if current else -1
        self.model_picker.setCurrentIndex(max(index, 0))

    def add_model_path(self, path: str) -> None:
        """Offer ``path`` in the picker and select it (Browse, tests, "Chat" from My Models)."""
        if path not in self._extra_models:
            self._extra_models.append(path)
        if self.model_picker.findData(path) < 0:
            self.model_picker.addItem(Path(path).name, path)
        self.model_picker.setCurrentIndex(self.model_picker.findData(path))
        self.refresh_models()

    def load_selected(self) -> None:
        path = self.model_picker.currentData()
        if not path:
            self.show_banner("Choose a model first: Browse… for a .gguf file or an MLX folder.")
            return
        self.hide_banner()
        try:
            self._load_request = self.service.load(str(path), self.load_options)
        except Exception as exc:  # a bad path, a damaged or unknown file: explained, nothing started
            self.show_banner(str(exc))
            emit(self.model_state_changed, "failed")
            return
        self._loading(True)
        self.model_label.setText(f"Loading {Path(path).name}…")
        emit(self.model_state_changed, "loading")

    def _on_engine_event(self, event: object) -> None:
        if isinstance(event, LoadProgress) and event.request_id == self._load_request:
            if event.fraction is not None:
                self.progress.setRange(0, 100)
                self.progress.setValue(int(event.fraction * 100))
        elif isinstance(event, ModelLoaded) and event.request_id == self._load_request:
            self._loading(False)
            loaded = self.service.finish_load(event.info)
            if loaded is not None:  # the picker always shows the model that is loaded
                path = str(loaded.model.path)
                if self.model_picker.findData(path) < 0:
                    self.add_model_path(path)
                self.model_picker.setCurrentIndex(self.model_picker.findData(path))
            self._set_model_label()
            if event.info.safe_mode:  # what crashed (or is known to crash here) and what was turned off
                self.show_banner(safe_mode_words(event.info.safe_mode, event.info.safe_mode_reason), warning=True)
            emit(self.model_state_changed, "loaded")
            self._refresh_usage()
            if self._send_after_load:
                self._send_after_load = False
                self.send()
        elif isinstance(event, EngineRecovering) and event.request_id == self._load_request:
            self.show_banner(event.describe(), warning=True)  # the load goes on in safe mode
        elif isinstance(event, RequestFailed) and event.request_id == self._load_request:
            self._loading(False)
            self._load_request = None
            self._send_after_load = False  # the message stays in the composer
            self._set_model_label()
            self._refresh_usage()
            if event.code == CancelledError.code:
                self.show_banner("Loading was cancelled.")
                emit(self.model_state_changed, "unloaded")
                return
            text = event.message
            if event.code == InsufficientMemoryError.code and self.service.last_request is not None:
                model, options = self.service.last_request
                text += " " + memory_advice(model.path, options, self.service.hardware())
            self.show_banner(text)
            emit(self.model_state_changed, "failed")
        elif isinstance(event, ModelUnloaded):
            self.service.loaded = None
            self._set_model_label()
            self._refresh_usage()
            emit(self.model_state_changed, "unloaded")
        elif isinstance(event, EngineCrashed):
            self._loading(False)
            self._send_after_load = False
            self.service.loaded = None
            self._set_model_label()
            self._refresh_usage()
            self.show_banner(
                f"{event.message} Your conversation is saved; load the model again to go on.",
                action=("Reload", self.load_selected),
            )
            emit(self.model_state_changed, "crashed")

    # -- banner ---------------------------------------------------------------------------------------------------
    def show_banner(self, text: str, *, action: tuple[str, Any] | None = None, warning: bool = False) -> None:
        """A failure in place (``warning``: something that worked, with a change the person should know of)."""
        colors = current_colors()
        colour = colors.warn if warning else colors.bad
        self.banner.setStyleSheet(f"color: {colour}; padding: 6px; border: 1px solid {colour}; border-radius: 6px;")
        self.banner.setText(text)
        self.banner.show()
        self._banner_callback = action[1] if action else None
        if action:
            self.banner_action.setText(action[0])
        self.banner_action.setVisible(action is not None)

    def _on_banner_action(self) -> None:
        if self._banner_callback is not None:
            self._banner_callback()

    def hide_banner(self) -> None:
        self.banner.hide()
        self.banner_action.hide()

    # -- conversations --------------------------------------------------------------------------------------------
    def focus_search(self) -> None:
        """Ctrl+K / Ctrl+F on this page: search the conversations."""
        self.conversations.search.setFocus()
        self.conversations.search.selectAll()

    def new_chat(self) -> None:
        path = self.model_picker.currentData() or ""
        loaded = self.service.loaded
        engine = loaded.model.engine if loaded and str(loaded.model.path) == path else ""
        conversation = self.service.chats.create(model=path, engine=engine, settings=self.settings_panel.settings())
        self.service.tool_store.set_options(conversation.id, self.chat_options)  # tools and documents carry over
        self.conversations.refresh(select=conversation.id)
        self.open_conversation(conversation.id)
        self.composer.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        conversation = self.service.chats.get(conversation_id)
        self.conversation_id = conversation_id
        self.cancel_edit()
        session = self.service.session(conversation_id)
        if conversation_id not in self._hooked:
            self._hooked.add(conversation_id)
            self.bridge.connect_hook(session.events, self._on_session_event)
        self.settings_panel.show_settings(conversation.system_prompt, conversation.settings)
        self.transcript.set_messages(self.service.chats.messages(conversation_id))
        self.transcript.set_calls(self.service.tool_store.calls(conversation_id))
        self._load_options(conversation_id)
        self.refresh_collections()
        self.center_stack.setCurrentWidget(self.transcript)
        if (
            conversation.model
            and self.model_picker.findData(conversation.model) < 0
            and Path(conversation.model).exists()
        ):
            self.add_model_path(conversation.model)
        elif conversation.model:
            self.model_picker.setCurrentIndex(self.model_picker.findData(conversation.model))
        self._update_buttons()
        self._refresh_usage()

    def _on_deleted(self, conversation_id: int) -> None:
        self.service.forget(conversation_id)
        self.forget_documents(conversation_id)
        if conversation_id == self.conversation_id:
            self.conversation_id = None
            self.transcript.set_messages([])
            self.center_stack.setCurrentWidget(self.empty)

    def _on_settings_changed(self, system_prompt: str, settings: ChatSettings) -> None:
        if self.conversation_id is not None:
            self.service.chats.update(self.conversation_id, system_prompt=system_prompt, settings=settings)

    # -- sending --------------------------------------------------------------------------------------------------
    def send(self) -> None:
        text = self.composer.toPlainText().strip()
        if not text:
            return
        if self.service.loaded is None:
            # Nothing loaded: load the selected model and send when it is in (no empty conversation meanwhile).
            if not self.model_picker.currentData():
                self.show_banner("No model is loaded: choose one above (or Browse…), and Send loads it.")
                return
            if not self.progress.isVisible():
                self.load_selected()
                if self._load_request is None:
                    return  # refused at once; the banner says why
            self._send_after_load = True
            emit(self.bridge.status_message, "Loading the model; your message is sent when it is ready.", 5000)
            return
        if self.conversation_id is None:
            self.new_chat()
        editing = self.editing_id
        if editing is not None:
            self._act("edit", editing, text)
        else:
            self._act("send", text)

    def _act(self, action: str, *args: Any) -> None:
        if self.conversation_id is None:
            return
        session = self.service.session(self.conversation_id)
        calls = {
            "send": lambda text: session.send(text, list(self.attachments), list(self.images)),
            "edit": session.edit_and_resend,
            "regenerate": session.regenerate,
            "continue": session.continue_reply,
        }
        self.hide_banner()
        self.send_button.setEnabled(False)

        def started(_message: Message) -> None:
            if action in ("send", "edit"):
                self.composer.clear()
                self.clear_attachments()
                self.clear_images()
                self.cancel_edit()

        def failed(exc: Exception) -> None:
            self.show_banner(str(exc))
            self._update_buttons()

        # counting tokens asks the engine process: off the GUI thread
        run_in_background(lambda: calls[action](*args), on_success=started, on_failure=failed, owner=self)

    def stop(self) -> None:
        if self.conversation_id is not None:
            self.service.session(self.conversation_id).stop()

    def on_escape(self) -> None:
        if self.editing_id is not None:
            self.cancel_edit()
        elif self.progress.isVisible():
            self.cancel_load()
        else:
            self.stop()

    def start_edit(self, message_id: int) -> None:
        message = self.service.chats.message(message_id)
        self.editing_id = message_id
        self.composer.setPlainText(message.content)
        self.editing_label.show()
        self.composer.setFocus()

    def cancel_edit(self) -> None:
        if self.editing_id is not None:
            self.composer.clear()
        self.editing_id = None
        self.editing_label.hide()

    def _copy(self, text: str) -> None:
        copy_to_clipboard(text)
        emit(self.bridge.status_message, "Copied to the clipboard", 2000)

    def _on_session_event(self, event: object) -> None:
        if getattr(event, "conversation_id", None) != self.conversation_id:
            if isinstance(event, ReplyFinished):
                emit(self.reply_finished, event.message)
            return
        if self._on_tool_event(event):
            return
        if isinstance(event, ReplyStarted):
            self._sync_transcript()
            self._update_buttons()
        elif isinstance(event, ReplyDelta):
            self.transcript.append_stream(event.message_id, event.text)
        elif isinstance(event, ReplyFinished):
            self._sync_transcript()
            self.transcript.upsert(event.message)
            if event.usage is not None:
                self._show_usage(event.usage)
            self._update_buttons()
            self.conversations.refresh()
            emit(self.reply_finished, event.message)

    def _sync_transcript(self) -> None:
        """Bring the cards in line with the store (regenerate and edit remove messages, send adds them)."""
        assert self.conversation_id is not None
        messages = self.service.chats.messages(self.conversation_id)
        ids = {m.id for m in messages}
        for message_id in [i for i in self.transcript.cards if i not in ids]:
            card = self.transcript.cards.pop(message_id)
            card.setParent(None)
            card.deleteLater()
        for message in messages:
            card = self.transcript.cards.get(message.id)
            if card is None or (card.message.content != message.content and message.state != "streaming"):
                self.transcript.upsert(message)

    def _update_buttons(self) -> None:
        busy = self.conversation_id is not None and self.service.session(self.conversation_id).busy
        # A focused button that is disabled hands the focus to the next widget (the system prompt), where the next
        # typed message would land: keep it in the composer instead.
        if (self.stop_button.hasFocus() and not busy) or (self.send_button.hasFocus() and busy):
            self.composer.setFocus(Qt.FocusReason.OtherFocusReason)
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    def _refresh_usage(self) -> None:
        if self.conversation_id is None or self.service.host.model is None:
            self.meter.setValue(0)
            self.meter_label.setText("Context: load a model to see how much of it this chat uses")
            return
        session = self.service.session(self.conversation_id)
        run_in_background(
            session.refresh_usage,
            on_success=self._show_usage,
            on_failure=lambda exc: logger.info("context count failed: %s", exc),
            owner=self,
        )

    def _show_usage(self, usage: ContextUsage | None) -> None:
        if usage is None:
            return
        colors = current_colors()
        color = {"ok": colors.good, "warning": colors.warn, "full": colors.bad}[usage.level]
        self.meter.setValue(int(min(1.0, usage.used / usage.limit) * 1000) if usage.limit else 0)
        self.meter.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
        self.meter_label.setText(f"Context: {usage.describe()}")
        self.meter_label.setStyleSheet(f"color: {color if usage.level != 'ok' else colors.muted};")

    def shutdown(self) -> None:
        self.service.close()  # stops a reply first, so no background task below waits on the engine
        QThreadPool.globalInstance().waitForDone(5000)


def safe_mode_words(changes: tuple[str, ...], reason: str) -> str:
    """What safe mode changed for this load, and why, in one sentence a person can act on."""
    why = f" ({reason[0].lower()}{reason[1:].rstrip('.')})" if reason else ""
    return f"Loaded in safe mode{why}. Changed: {'; '.join(changes)}. Chat works as usual; only speed may differ."
