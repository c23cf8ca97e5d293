"""The Downloads table model: one row per download, updated in place (``dataChanged``) as progress arrives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar, QStyleOptionViewItem

from core.downloads.manager import DownloadItem, DownloadState
from ui.pages.discover_models import human_size
from ui.theme import current_colors
from ui.widgets.record_model import RecordTableModel

Index = QModelIndex | QPersistentModelIndex
ITEM_ROLE = Qt.ItemDataRole.UserRole + 1
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 2

STATE_WORDS = {
    DownloadState.QUEUED: "Queued",
    DownloadState.RUNNING: "Downloading",
    DownloadState.PAUSED: "Paused",
    DownloadState.FAILED: "Failed",
    DownloadState.CANCELLED: "Cancelled",
    DownloadState.DONE: "Done",
}


def human_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


class DownloadsModel(RecordTableModel):
    COL_NAME, COL_STATE, COL_PROGRESS, COL_SIZE, COL_SPEED, COL_ETA, COL_MESSAGE = range(7)
    HEADERS = ("Download", "State", "Progress", "Size", "Speed", "Time left", "Details")

    def __init__(self) -> None:
        super().__init__()
        self.items: list[DownloadItem] = []

    def records(self) -> Sequence[Any]:
        return self.items

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        item = self.items[index.row()]
        column = index.column()
        if role == ITEM_ROLE:
            return item
        if role == PROGRESS_ROLE:
            return item.progress
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.COL_NAME:
                return item.label
            if column == self.COL_STATE:
                return STATE_WORDS[item.state]
            if column == self.COL_PROGRESS:
                return f"{item.progress * 100:.1f}%"
            if column == self.COL_SIZE:
                return f"{human_size(item.done)} of {human_size(item.total)}"
            if column == self.COL_SPEED:
                return f"{item.speed / 1e6:.1f} MB/s" if item.state == DownloadState.RUNNING else ""
            if column == self.COL_ETA:
                return human_eta(item.eta_seconds)
            if column == self.COL_MESSAGE:
                return item.message
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.message or "\n".join(str(p) for p in item.paths)
        if role == Qt.ItemDataRole.ForegroundRole and column in (self.COL_STATE, self.COL_MESSAGE):
            colors = current_colors()
            if item.state == DownloadState.FAILED:
                return QColor(colors.bad)
            if item.state == DownloadState.PAUSED and item.message:
                return QColor(colors.warn)
            if item.state == DownloadState.DONE:
                return QColor(colors.good)
        return None

    def reset(self, items: list[DownloadItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def upsert(self, item: DownloadItem) -> None:
        for row, existing in enumerate(self.items):
            if existing.id == item.id:
                self.items[row] = item
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
                return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.items.insert(0, item)  # newest first, as the manager lists them
        self.endInsertRows()


class ProgressDelegate(QStyledItemDelegate):
    def paint(self, painter: Any, option: QStyleOptionViewItem, index: Index) -> None:
        progress = index.data(PROGRESS_ROLE)
        if progress is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(4, 6, -4, -6)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(progress * 1000)
        bar.text = index.data(Qt.ItemDataRole.DisplayRole)
        bar.textVisible = True
        # The view's palette, not a default one: the text over the filled part must contrast with the accent.
        bar.palette = option.palette
        bar.fontMetrics = option.fontMetrics
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)
