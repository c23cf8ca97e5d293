"""The Discover page (placeholder until its feature lands: header and empty state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


class DiscoverPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Discover",
            "Search Hugging Face for GGUF and MLX models and see which quant fits this machine.",
            parent,
        )
        self.app = app
        self.bridge = bridge
        self.empty = EmptyState(
            "discover",
            "Search for a model",
            "Type a name like “qwen” or “llama” to browse GGUF and MLX repositories, with a fit verdict for every file.",
        )
        self.body.addWidget(self.empty, 1)
