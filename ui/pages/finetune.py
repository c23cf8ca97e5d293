"""The Fine-tune page (placeholder until its feature lands: header and empty state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

from ui.widgets.common import EmptyState, Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


class FinetunePage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Fine-tune", "Teach a model your own data with LoRA, on MLX or PyTorch.", parent)
        self.app = app
        self.bridge = bridge
        self.empty = EmptyState(
            "finetune",
            "No fine-tuning jobs yet",
            "Choose a base model and a dataset (JSONL or CSV) to train an adapter you can chat with.",
        )
        self.body.addWidget(self.empty, 1)
