"""The details pane of My Models: every piece of metadata the library has about one model."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from core.models.types import LibraryEntry
from ui.widgets.library_table import FORMAT_LABELS, human_params, human_size, origin_label
from ui.widgets.responsive import ElidedLabel

if TYPE_CHECKING:
    from core.workshop.records import Lineage

FIELDS = (
    "Format",
    "Architecture",
    "Parameters",
    "Quantization",
    "Context length",
    "Chat template",
    "Licence",
    "Size on disk",
    "Origin",
    "Repository",
    "Base model",
    "Made from",
    "Location",
)


class ModelDetails(QWidget):
    #: The library id of the model this one was made from (its name in "Made from" is a link).
    source_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # A long model name (no spaces to wrap at) is cut at the end, whole in the tooltip: never clipped.
        self.title = ElidedLabel()
        self.title.setObjectName("EmptyTitle")
        self.values: dict[str, QLabel] = {}
        self.form = form = QFormLayout()
        # Top: a label lines up with the first line of a value that wraps (the location).
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        for name in FIELDS:
            value = QLabel()
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.values[name] = value
            form.addRow(f"{name}:", value)
        made_from = self.values["Made from"]
        made_from.setTextFormat(Qt.TextFormat.RichText)
        made_from.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        made_from.linkActivated.connect(lambda link: self.source_requested.emit(link.removeprefix("model:")))
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setObjectName("ErrorText")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addWidget(self.warning)
        self.set_entry(None)

    def set_entry(
        self,
        entry: LibraryEntry | None,
        base_name: str | None = None,
        made_from: Lineage | None = None,
        source_id: str | None = None,
    ) -> None:
        """``made_from``: what the Workshop made this model from (quantize, convert); ``source_id`` the source's
        library id when it is in the library (its name is then a link that selects it)."""
        self.form.setRowVisible(self.values["Made from"], entry is not None and made_from is not None)
        if entry is None:
            self.title.setText("Select a model")
            for value in self.values.values():
                value.setText("")
            self.warning.hide()
            return
        meta = entry.metadata
        self.title.setText(entry.name)
        parts = len(entry.files)
        shown = {
            "Format": FORMAT_LABELS[entry.format]
            + (f", {parts} parts" if entry.format.value == "gguf-split" else "")
            + (" — an embedding model, for searching your documents (not for chat)" if entry.is_embedding else ""),
            "Architecture": meta.architecture or "unknown",
            "Parameters": f"{human_params(meta.parameter_count)} ({meta.parameter_count:,})"
            if meta.parameter_count
            else "unknown",
            "Quantization": meta.quant or "unknown",
            "Context length": f"{meta.context_length:,} tokens" if meta.context_length else "unknown",
            "Chat template": "yes" if meta.has_chat_template else "no (chat uses a generic template)",
            "Licence": meta.license or "not stated",
            "Size on disk": human_size(entry.size_bytes),
            "Origin": origin_label(entry),
            "Repository": entry.repo_id or "—",
            "Base model": base_name or meta.base_model or "—",
            # A zero-width space after each separator lets a long path wrap inside the pane.
            "Location": str(entry.root).replace("/", "/\u200b").replace("\\", "\\\u200b"),
        }
        for name, text in shown.items():
            self.values[name].setText(text)
        if made_from is not None:
            name = html.escape(made_from.source_name)
            link = f'<a href="model:{html.escape(source_id)}">{name}</a>' if source_id else name
            self.values["Made from"].setText(f"{link} ({html.escape(made_from.how)})")
            self.values["Made from"].setToolTip(made_from.source_path)
        self.warning.setVisible(not entry.available)
        self.warning.setText("Some of this model's files are missing; it cannot be loaded until they are back.")
