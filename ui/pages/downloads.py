"""The Downloads page: every download with progress, speed and time left, and pause / resume / cancel / retry.
It also puts a one-line summary in the window's status bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.downloads.manager import DownloadItem, DownloadManager, DownloadState
from core.errors import HangarError
from ui.pages.downloads_model import ITEM_ROLE, DownloadsModel, ProgressDelegate
from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


#: Starting column widths: "Download" gets room for a repo and file name; the message column takes the rest.
COLUMN_WIDTHS = {
    DownloadsModel.COL_NAME: 260,
    DownloadsModel.COL_STATE: 96,
    DownloadsModel.COL_PROGRESS: 150,
    DownloadsModel.COL_SIZE: 136,
    DownloadsModel.COL_SPEED: 80,
    DownloadsModel.COL_ETA: 76,
}


def summary_text(items: list[DownloadItem]) -> str:
    active = [i for i in items if i.state in (DownloadState.RUNNING, DownloadState.QUEUED)]
    if not active:
        paused = sum(1 for i in items if i.state == DownloadState.PAUSED)
        return f"{paused} download{'s' if paused != 1 else ''} paused" if paused else ""
    total = sum(i.total for i in active)
    done = sum(i.done for i in active)
    speed = sum(i.speed for i in active)
    percent = f" · {done / total * 100:.0f}%" if total else ""
    return f"⬇ {len(active)} downloading{percent} · {speed / 1e6:.1f} MB/s"


class DownloadsPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Downloads",
            "Queued, running and finished downloads. Paused downloads resume where they stopped.",
            parent,
        )
        self.app = app
        self.bridge = bridge
        self.manager: DownloadManager = app.downloads
        self.model = DownloadsModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Downloads")
        self.table.setToolTip("Select a download to pause, resume, cancel or retry it")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setItemDelegateForColumn(DownloadsModel.COL_PROGRESS, ProgressDelegate(self.table))
        header = self.table.horizontalHeader()
        # Fixed starting widths (not "fit the contents"): columns must not jump as speeds and sizes tick.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in COLUMN_WIDTHS.items():
            header.resizeSection(column, width)
        header.setSectionResizeMode(DownloadsModel.COL_PROGRESS, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(DownloadsModel.COL_MESSAGE, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.dataChanged.connect(lambda *_: self._update_buttons())

        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel")
        self.retry_button = QPushButton("Retry")
        self.pause_button.setToolTip("Pause the selected download; what is already on disk is kept")
        self.resume_button.setToolTip("Continue the selected download from where it stopped")
        self.cancel_button.setToolTip("Stop the selected download and delete its partial files")
        self.retry_button.setToolTip("Start a failed download again, keeping what already arrived")
        self.chat_button = QPushButton("Chat")
        self.chat_button.setObjectName("Primary")
        self.chat_button.setToolTip("Load the downloaded model and open a new chat with it")
        self.chat_button.clicked.connect(lambda: self._open_finished("chat"))
        self.show_button = QPushButton("Show in My Models")
        self.show_button.setToolTip("Open My Models with the downloaded model selected")
        self.show_button.clicked.connect(lambda: self._open_finished("models"))
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove finished, cancelled and failed downloads from this list (files stay)")
        self.clear_button.clicked.connect(self.clear_finished)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        buttons = QHBoxLayout()
        for button, action in (
            (self.pause_button, self.manager.pause),
            (self.resume_button, self.manager.resume),
            (self.cancel_button, self.manager.cancel),
            (self.retry_button, self.manager.retry_download),
        ):
            button.clicked.connect(lambda _checked=False, act=action: self._act(act))
            buttons.addWidget(button)
        buttons.addSpacing(12)
        buttons.addWidget(self.chat_button)
        buttons.addWidget(self.show_button)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.error)
        layout.addWidget(self.table, 1)
        self.empty = EmptyState(
            "downloads",
            "Nothing downloading",
            "Files you download from Discover appear here with their progress, speed and time left.",
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        self.body.addWidget(self.stack, 1)

        #: The status-bar summary; installed into the window once the page is part of it.
        self.summary = QLabel()
        self.summary.setObjectName("DownloadsSummary")
        self._cleared = set(self._state().value("downloads/cleared", []) or [])
        self.model.reset([i for i in self.manager.list() if i.id not in self._cleared])
        self._refresh()
        bridge.connect_hook(self.manager.changed, self._on_changed)
        QTimer.singleShot(0, self._install_summary)

    def _install_summary(self) -> None:
        if not shiboken6.isValid(self):
            return
        window = self.window()
        if isinstance(window, QMainWindow) and window is not self:
            window.statusBar().insertPermanentWidget(0, self.summary)

    def _on_changed(self, item: DownloadItem) -> None:
        if not shiboken6.isValid(self) or item.id in self._cleared:
            return
        before = next((i.state for i in self.model.items if i.id == item.id), None)
        self.model.upsert(item)
        self._refresh()
        if before != item.state and item.state in (DownloadState.DONE, DownloadState.FAILED):
            self._notify(item)

    def _notify(self, item: DownloadItem) -> None:
        """A download ended: say so in the status bar, and ask the desktop for attention if Hangar is behind."""
        if item.state == DownloadState.DONE:
            text = f"Downloaded {item.label} — it is in My Models (Downloads has Chat and Show)."
        else:
            text = f"Download of {item.label} failed: {item.message or 'see Downloads'}"
        self.bridge.status_message.emit(text, 10_000)
        QApplication.alert(self.window(), 0)

    # -- finished rows --------------------------------------------------------------------------------------------
    def library_entry(self, item: DownloadItem | None) -> object | None:
        """The My Models entry a finished download became (None while it is not in the library)."""
        if item is None or item.state != DownloadState.DONE or not item.paths:
            return None

        try:
            return self.app.library.find_by_path(item.paths[0])
        except HangarError:
            return None

    def _open_finished(self, page: str) -> None:
        entry = self.library_entry(self.selected())
        if entry is None:
            self.error.setText("This download is not in My Models (yet): rescan My Models, or download it again.")
            self.error.setVisible(True)
            return
        self.bridge.navigate_requested.emit(page, entry.id)  # type: ignore[attr-defined]

    def clear_finished(self) -> None:
        """Hide finished, cancelled and failed rows (remembered across restarts); the files are not touched."""
        ended = (DownloadState.DONE, DownloadState.CANCELLED, DownloadState.FAILED)
        self._cleared |= {i.id for i in self.model.items if i.state in ended}
        self._state().setValue("downloads/cleared", sorted(self._cleared))
        self.model.reset([i for i in self.model.items if i.id not in self._cleared])
        self._refresh()

    def _state(self) -> QSettings:
        return QSettings(str(self.app.paths.window_state_file), QSettings.Format.IniFormat)

    def _refresh(self) -> None:
        self.stack.setCurrentIndex(1 if self.model.items else 0)
        self.summary.setText(summary_text(self.model.items))
        self._update_buttons()

    def selected(self) -> DownloadItem | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.data(rows[0], ITEM_ROLE) if rows else None

    def select(self, download_id: str) -> None:
        for row, item in enumerate(self.model.items):
            if item.id == download_id:
                self.table.selectRow(row)

    def _update_buttons(self) -> None:
        item = self.selected()
        state = item.state if item else None
        self.pause_button.setEnabled(state in (DownloadState.RUNNING, DownloadState.QUEUED))
        self.resume_button.setEnabled(state == DownloadState.PAUSED)
        self.cancel_button.setEnabled(state in (DownloadState.RUNNING, DownloadState.QUEUED, DownloadState.PAUSED))
        self.retry_button.setEnabled(state in (DownloadState.FAILED, DownloadState.CANCELLED))
        done = state == DownloadState.DONE
        self.chat_button.setVisible(done)
        self.show_button.setVisible(done)
        ended = (DownloadState.DONE, DownloadState.CANCELLED, DownloadState.FAILED)
        self.clear_button.setEnabled(any(i.state in ended for i in self.model.items))

    def _act(self, action: object) -> None:
        item = self.selected()
        if item is None:
            return
        self.error.setVisible(False)
        try:
            action(item.id)  # type: ignore[operator]  # quick: these only signal a job or update a row
        except HangarError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
