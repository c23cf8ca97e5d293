"""Discover's "For your documents" line: before the first search, the suggested embedding model (search by meaning
for chat with your documents) with a one-click download. Hidden while a search is typed, and once My Models holds
an embedding model."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from core.hub.suggestions import EMBEDDING_SUGGESTION, Suggestion
from ui.operations import run_in_background
from ui.theme import current_colors
from ui.units import format_bytes

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)


class DocumentsSuggestion(QFrame):
    def __init__(
        self,
        app: AppContext,
        bridge: Bridge,
        suggestion: Suggestion = EMBEDDING_SUGGESTION,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.app = app
        self.bridge = bridge
        self.suggestion = suggestion
        self.setObjectName("DocumentsSuggestion")
        colors = current_colors()
        self.setStyleSheet(
            f"QFrame#DocumentsSuggestion {{ border: 1px solid {colors.border}; border-radius: 6px;"
            f" background: {colors.surface}; }}"
        )
        s = suggestion
        self.label = QLabel(
            f"<b>For your documents:</b> {s.title} — {s.blurb} "
            f"<span style='color:{colors.muted}'>({s.params} parameters · {s.quant} · "
            f"{format_bytes(s.size_bytes)})</span>"
        )
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setToolTip(
            f"{s.repo_id} / {s.file}\nAn embedding model: Chat → Documents → New collection… uses it to search your "
            "files by meaning as well as by their words."
        )
        self.button = QPushButton("Download")
        self.button.setToolTip(f"Download {s.file} ({format_bytes(s.size_bytes)}) into My Models")
        self.button.clicked.connect(self.download)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 8, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)

    def wanted(self) -> bool:
        """Offered until My Models holds an embedding model."""
        try:
            return not any(e.is_embedding for e in self.app.library.list())
        except Exception as exc:  # a suggestion is a nicety
            logger.info("library not read for the documents suggestion: %s", exc)
            return True

    def download(self) -> None:
        s = self.suggestion
        manager = self.app.downloads
        self.button.setEnabled(False)
        self.button.setText("Starting…")
        run_in_background(
            lambda: manager.enqueue(s.repo_id, file=s.file),
            on_success=self._guard(self._started),
            on_failure=self._guard(self._failed),
        )

    def _started(self, item: Any) -> None:
        self.button.setText("Downloading")
        self.bridge.status_message.emit(f"Downloading {item.label} — see Downloads.", 5000)

    def _failed(self, error: Exception) -> None:
        self.button.setEnabled(True)
        self.button.setText("Try again")
        self.button.setToolTip(str(error))
        self.bridge.status_message.emit(str(error), 8000)

    def _guard(self, fn: Any) -> Any:
        def call(*args: Any) -> Any:
            if shiboken6.isValid(self):
                return fn(*args)
            return None

        return call
