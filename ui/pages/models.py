"""The My Models page (placeholder until its feature lands: header and empty state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


class ModelsPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("My Models", "Everything on this machine that Hangar can run or fine-tune.", parent)
        self.app = app
        self.bridge = bridge
        self.empty = EmptyState(
            "models",
            "No models yet",
            "Download one from Discover, or drop .gguf files and MLX folders anywhere on this window to import them.",
        )
        self.body.addWidget(self.empty, 1)
