"""The conversation list: a Qt list model over ``ChatStore.conversations`` (search runs in SQLite, so it finds
message text too) and the column that holds it with search, new, rename and delete."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListView,
    QMessageBox,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from core.chat.store import ChatStore, Conversation
from ui.qtfix import emit

ConversationRole = Qt.ItemDataRole.UserRole + 1


class ConversationListModel(QAbstractListModel):
    def __init__(self, chats: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._chats = chats
        self._rows: list[Conversation] = []
        self.search = ""

    def reload(self, search: str | None = None) -> None:
        if search is not None:
            self.search = search
        self.beginResetModel()
        self._rows = self._chats.conversations(self.search)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        conversation = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return conversation.title
        if role == Qt.ItemDataRole.ToolTipRole:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.updated_at))
            model = conversation.model.rsplit("/", 1)[-1] or "no model"
            return f"{conversation.title}\n{model} · {when}"
        if role == ConversationRole:
            return conversation
        return None

    def row_of(self, conversation_id: int) -> int:
        return next((i for i, c in enumerate(self._rows) if c.id == conversation_id), -1)


class _RowAsWideAsTheList(QStyledItemDelegate):
    """Rows never wider than the list: the title is drawn cut at the end rather than running off the side."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        view = self.parent()
        if isinstance(view, QListView):
            hint.setWidth(min(hint.width(), view.viewport().width()))
        return hint


class ConversationColumn(QWidget):
    """Search, the list, and new / rename / delete. Emits the chosen conversation's id."""

    selected = Signal(int)
    new_requested = Signal()
    deleted = Signal(int)

    def __init__(self, chats: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chats = chats
        self.setFixedWidth(180)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Find conversations by title or by words in their messages (Ctrl+K)")
        self.search.setAccessibleName("Search chats")
        self.model = ConversationListModel(chats, self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setAccessibleName("Conversations")
        self.view.setToolTip("Your conversations, newest first; each keeps its model, settings and messages")
        # a long title is cut at the end ("Weekend baking and…", the whole title in the row's tooltip): the list
        # never scrolls sideways
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setWordWrap(False)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setItemDelegate(_RowAsWideAsTheList(self.view))
        self.new_button = QPushButton("New chat")
        self.new_button.setObjectName("Primary")
        self.new_button.setToolTip("Start a new conversation with the loaded model (Ctrl+N)")
        self.rename_button = QPushButton("Rename")
        self.rename_button.setToolTip("Give the selected conversation a new title")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected conversation and all its messages")
        buttons = QHBoxLayout()
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)
        self.search.textChanged.connect(lambda text: self.refresh(search=text))
        self.view.selectionModel().currentChanged.connect(self._on_current)
        self.new_button.clicked.connect(self.new_requested)
        self.rename_button.clicked.connect(self.rename_current)
        self.delete_button.clicked.connect(self.delete_current)
        self.refresh()

    def refresh(self, *, search: str | None = None, select: int | None = None) -> None:
        keep = select if select is not None else self.current_id()
        self.view.selectionModel().blockSignals(True)
        self.model.reload(search)
        row = self.model.row_of(keep) if keep is not None else -1
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))
        self.view.selectionModel().blockSignals(False)
        has = self.current_id() is not None
        self.rename_button.setEnabled(has)
        self.delete_button.setEnabled(has)

    def current_id(self) -> int | None:
        index = self.view.currentIndex()
        conversation = index.data(ConversationRole) if index.isValid() else None
        return conversation.id if conversation is not None else None

    def select(self, conversation_id: int) -> None:
        row = self.model.row_of(conversation_id)
        if row < 0:
            self.search.clear()
            self.refresh()
            row = self.model.row_of(conversation_id)
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))

    def rename_current(self, title: str | None = None) -> None:
        conversation_id = self.current_id()
        if conversation_id is None:
            return
        if not isinstance(title, str):
            current = self.chats.get(conversation_id).title
            title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=current)
            if not ok:
                return
        if title.strip():
            self.chats.rename(conversation_id, title)
            self.refresh()

    def delete_current(self, confirmed: bool = False) -> None:
        conversation_id = self.current_id()
        if conversation_id is None:
            return
        if confirmed is not True:
            answer = QMessageBox.question(self, "Delete chat", "Delete this conversation and all its messages?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.chats.delete(conversation_id)
        emit(self.deleted, conversation_id)
        self.refresh()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        conversation = current.data(ConversationRole) if current.isValid() else None
        has = conversation is not None
        self.rename_button.setEnabled(has)
        self.delete_button.setEnabled(has)
        if conversation is not None:
            emit(self.selected, conversation.id)
