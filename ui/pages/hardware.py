"""The Hardware page (first version: memory, cores and installed engines; GPU detail comes with the fit feature)."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

import psutil
from PySide6.QtWidgets import QFormLayout, QFrame, QLabel, QWidget

from ui.widgets.common import Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

_GIB = 1024**3


class HardwarePage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Hardware", "What this machine offers to models: memory, processors and engines.", parent
        )
        self.app = app
        card = QFrame()
        card.setObjectName("Card")
        form = QFormLayout(card)
        form.setContentsMargins(16, 14, 16, 14)
        memory = psutil.virtual_memory()
        form.addRow("System", QLabel(f"{platform.system()} {platform.release()} ({platform.machine()})"))
        form.addRow(
            "Memory", QLabel(f"{memory.total / _GIB:.1f} GB total, {memory.available / _GIB:.1f} GB free")
        )
        form.addRow("Processor cores", QLabel(str(os.cpu_count() or "unknown")))
        engines = app.engine_availability()
        text = ", ".join(f"{name} ({'installed' if ok else 'not installed'})" for name, ok in engines.items())
        form.addRow("Engines", QLabel(text or "none"))
        self.body.addWidget(card)
        self.body.addStretch(1)
