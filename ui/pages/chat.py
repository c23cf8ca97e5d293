"""The Chat page (placeholder until its feature lands: header and empty state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


class ChatPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Chat", "Talk to a local model. Nothing leaves this machine.", parent)
        self.app = app
        self.bridge = bridge
        self.empty = EmptyState(
            "chat",
            "No conversations yet",
            "Pick a model in My Models and choose Chat to start a conversation.",
        )
        self.body.addWidget(self.empty, 1)
