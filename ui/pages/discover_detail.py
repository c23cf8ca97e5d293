"""The model detail panel of the Discover page: rendered model card, the complete file list grouped by quant with
fit badges, and the download action. It only displays; the page does the loading off the GUI thread."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.hub.files import FileGroup, GroupKind
from ui.pages.discover_models import ITEM_ROLE, FilesModel, human_count, preferred_group
from ui.theme import current_colors
from ui.widgets.common import size_columns
from ui.widgets.responsive import ColumnsThatFit, ElidedLabel

if TYPE_CHECKING:
    from core.hub.client import ModelDetail


class InlineMessage(QWidget):
    """An error or note shown in place, with an optional retry: no dialog storms."""

    retry_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setOpenExternalLinks(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.retry = QPushButton("Retry")
        self.retry.setToolTip("Try again (F5)")
        self.retry.clicked.connect(self.retry_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.retry)
        self.setVisible(False)

    def show_message(self, text: str, *, retry: bool = False, error: bool = True) -> None:
        linked = _linkify(html.escape(text))
        # The theme's own red: a fixed dark red is unreadable on the dark theme.
        self.label.setText(f"<span style='color:{current_colors().bad}'>{linked}</span>" if error else linked)
        self.retry.setVisible(retry)
        self.setVisible(True)

    def clear(self) -> None:
        self.label.clear()
        self.setVisible(False)


def _linkify(text: str) -> str:
    import re

    return re.sub(r"(https?://[^\s,;]+[^\s,;.)])", r"<a href='\1'>\1</a>", text)


class ModelDetailView(QWidget):
    download_requested = Signal(object)  # FileGroup

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detail: ModelDetail | None = None
        # A long repository name is cut at the end, whole in the tooltip: it never widens the pane.
        self.title = ElidedLabel("Choose a model")
        self.title.setObjectName("SectionTitle")
        self.stats = QLabel()
        self.stats.setObjectName("PageSubtitle")
        self.stats.setWordWrap(True)
        self.gated = QLabel()
        self.gated.setWordWrap(True)
        self.gated.setOpenExternalLinks(True)
        self.gated.setVisible(False)
        self.message = InlineMessage()
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.card.setAccessibleName("Model card")
        self.card.setToolTip("The model card written by the model's authors on the Hub")
        self.files_model = FilesModel()
        self.files = QTableView()
        self.files.setModel(self.files_model)
        self.files.setAccessibleName("Files")
        self.files.setToolTip(
            "Every file of the repository, grouped by quant; the fit column says whether it runs here. "
            "Double-click a quant to download it"
        )
        self.files.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.files.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.files.verticalHeader().setVisible(False)
        self.files.setAlternatingRowColors(True)
        self.files.setWordWrap(False)
        self.files.setTextElideMode(Qt.TextElideMode.ElideRight)  # the full name is in each row's tooltip
        header = self.files.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # The fit column holds "★ Fits (CPU) · 201.6 MB" in bold for the best quant.
        size_columns(
            self.files,
            {FilesModel.COL_QUANT: 62, FilesModel.COL_SIZE: 72, FilesModel.COL_KIND: 84, FilesModel.COL_FIT: 168},
        )
        header.setSectionResizeMode(FilesModel.COL_NAME, QHeaderView.ResizeMode.Stretch)
        # In a narrow pane notes, quant and size give way (all in the row's tooltip) before the file names shrink to
        # "t…" or the fit column goes out of sight.
        self.files_columns = ColumnsThatFit(
            self.files, FilesModel.COL_NAME, 140, [FilesModel.COL_KIND, FilesModel.COL_QUANT, FilesModel.COL_SIZE]
        )
        self.files.doubleClicked.connect(lambda _index: self._request_download())
        self.files.selectionModel().selectionChanged.connect(lambda *_: self._update_button())
        self.download = QPushButton("Download")
        self.download.setObjectName("Primary")
        self.download.setEnabled(False)
        self.download.setToolTip("Download the selected quant into your models folder; progress is on Downloads")
        self.download.clicked.connect(self._request_download)
        actions = QHBoxLayout()
        actions.addWidget(self.stats, 1)
        actions.addWidget(self.download)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.files)
        split.addWidget(self.card)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(actions)
        layout.addWidget(self.gated)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)

    def show_nothing(self) -> None:
        """No model open (a new search does not list it): nothing of the previous one stays on screen."""
        self.show_loading("")
        self.title.setText("Choose a model")
        self.stats.setText("")

    def show_loading(self, repo_id: str) -> None:
        self.detail = None
        self.title.setText(repo_id)
        self.stats.setText("Loading…")
        self.gated.setVisible(False)
        self.message.clear()
        self.card.clear()
        self.files_model.reset([])
        self._update_button()

    def show_detail(self, detail: ModelDetail) -> None:
        self.detail = detail
        s = detail.summary
        self.title.setText(s.repo_id)
        updated = s.updated.strftime("%Y-%m-%d") if s.updated else "unknown"
        licence = f" · licence {detail.licence}" if detail.licence else ""
        vision = any(g.kind == GroupKind.COMPANION and "mmproj" in g.label.lower() for g in detail.groups)
        self.stats.setText(
            f"by {s.author} · {human_count(s.downloads)} downloads · {human_count(s.likes)} likes · "
            f"updated {updated}{licence}" + (" · vision: takes images (projector included)" if vision else "")
        )
        if s.gated:
            url = html.escape(detail.licence_url)
            self.gated.setText(
                f"This model is gated: <a href='{url}'>accept its licence on the Hub</a>, then add your "
                "Hugging Face token in Settings."
            )
        self.gated.setVisible(bool(s.gated))
        self.message.clear()
        self.card.setMarkdown(detail.card_markdown or "*This model has no model card.*")
        self.files_model.reset(list(detail.groups))
        preferred = preferred_group(detail.groups)  # never the smallest quant by default
        if preferred is not None:
            self.files.selectRow(list(detail.groups).index(preferred))
        self._update_button()

    def show_error(self, text: str) -> None:
        self.stats.setText("")
        self.message.show_message(text, retry=True)

    def selected_group(self) -> FileGroup | None:
        rows = self.files.selectionModel().selectedRows()
        if not rows:
            return None
        return self.files_model.data(rows[0], ITEM_ROLE)

    def select_group(self, key: str) -> None:
        for row, group in enumerate(self.files_model.groups):
            if group.key == key:
                self.files.selectRow(row)

    def _update_button(self) -> None:
        group = self.selected_group()
        self.download.setEnabled(self.detail is not None and group is not None and group.downloadable)
        self.download.setText(f"Download {group.quant or group.label}" if group and group.downloadable else "Download")

    def _request_download(self) -> None:
        group = self.selected_group()
        if group is not None and group.downloadable and self.detail is not None:
            self.download_requested.emit(group)
