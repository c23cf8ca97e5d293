"""The Downloads page (placeholder until its feature lands: header and empty state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


class DownloadsPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Downloads",
            "Queued, running and finished downloads. Paused downloads resume where they stopped.",
            parent,
        )
        self.app = app
        self.bridge = bridge
        self.empty = EmptyState(
            "downloads",
            "Nothing downloading",
            "Files you download from Discover appear here with their progress, speed and time left.",
        )
        self.body.addWidget(self.empty, 1)
