"""Dialogs of the chat's documents: a cited file shown at its place (the passage highlighted and scrolled to, with
"Open in default app"), and "New collection…" (a name, the files and folders to index, and the embedding model
that searches them by meaning)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from core.chat.documents import cited_place
from core.errors import HangarError
from ui.theme import current_colors


class SourceViewer(QDialog):
    """A source of a reply: its file's text, the cited lines highlighted and in view."""

    def __init__(self, source: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = Path(str(source.get("path", "")))
        self.setWindowTitle(f"Source: {self.path.name}")
        self.resize(760, 520)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.error = QLabel()
        self.error.setObjectName("ErrorText")
        self.error.setWordWrap(True)
        self.error.hide()
        self.open_button = QPushButton("Open in default app")
        self.open_button.setToolTip(f"Open {self.path} with the app your system uses for it")
        self.open_button.clicked.connect(self.open_externally)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.error)
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)
        self.first_line = self.last_line = 0
        try:
            place = cited_place(source)
        except (HangarError, OSError) as exc:  # the file moved or changed since the reply: said, nothing else
            self.label.setText(str(self.path))
            self.error.setText(f"The file cannot be shown now: {exc}")
            self.error.show()
            self.text.setPlainText(str(source.get("text", "")))
            return
        self.label.setText(f"<b>{place.label}</b> — {self.path.parent}")
        self.text.setPlainText(place.text)
        self.first_line, self.last_line = place.first, place.last
        self._highlight(place.first, place.last)

    def _highlight(self, first: int, last: int) -> None:
        """A band across each cited line, and the place in view a few lines below the top."""
        document = self.text.document()
        color = QColor(current_colors().accent)
        color.setAlpha(70)
        selections = []
        for number in range(max(0, first), max(first, last) + 1):
            block = document.findBlockByNumber(number)
            if not block.isValid():
                break
            selection = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setBackground(color)
            fmt.setProperty(QTextFormat.Property.FullWidthSelection, True)
            selection.format = fmt  # type: ignore[attr-defined]
            selection.cursor = QTextCursor(block)  # type: ignore[attr-defined]
            selections.append(selection)
        self.text.setExtraSelections(selections)
        end = document.findBlockByNumber(max(first, last))
        if end.isValid():
            self.text.setTextCursor(QTextCursor(end))
            self.text.ensureCursorVisible()
        self.text.setTextCursor(QTextCursor(document.findBlockByNumber(max(0, first - 3))))
        self.text.ensureCursorVisible()

    def highlighted_text(self) -> str:
        """The cited lines, as highlighted."""
        return "\n".join(s.cursor.block().text() for s in self.text.extraSelections())

    def open_externally(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path)))


#: Shown in "New collection…" when My Models holds no embedding model.
NO_EMBEDDING_HINT = (
    "Full-text search only. For search by meaning, get a small embedding model (Discover → ‘For your documents’)."
)


class NewCollectionDialog(QDialog):
    """A collection's name, the files and folders to index into it, and the embedding model that searches it by
    meaning (or full text only)."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        name: str = "",
        embedding_models: Sequence[tuple[str, Path]] = (),
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New document collection")
        self.resize(560, 360)
        self.name = QLineEdit(name)
        self.name.setPlaceholderText("e.g. project-notes")
        self.name.setToolTip("Letters, digits, spaces, '.', '_' or '-'")
        self.paths = QListWidget()
        self.paths.setToolTip("Files and folders to index (folders with everything under them)")
        add_files = QPushButton("Add files…")
        add_folder = QPushButton("Add folder…")
        add_files.clicked.connect(self._add_files)
        add_folder.clicked.connect(self._add_folder)
        self.error = QLabel()
        self.error.setObjectName("ErrorText")
        self.error.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.index_button = self.buttons.addButton("Index", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        self.meaning = QComboBox()
        self.meaning.setAccessibleName("Search by meaning with")
        self.meaning.setToolTip(
            "An embedding model ranks passages by meaning as well as by their words (hybrid search)"
        )
        for model_name, path in embedding_models:
            self.meaning.addItem(model_name, str(path))
            self.meaning.setItemData(self.meaning.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        self.meaning.addItem("Full text only", None)
        self.meaning.setEnabled(bool(embedding_models))
        self.hint = QLabel(NO_EMBEDDING_HINT)
        self.hint.setObjectName("EmbeddingHint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color: {current_colors().muted};")
        self.hint.setVisible(not embedding_models)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Search by meaning with", self.meaning)
        form.addRow("", self.hint)
        row = QHBoxLayout()
        row.addWidget(add_files)
        row.addWidget(add_folder)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(
            QLabel("Text, Markdown, PDF, HTML and source files are read; indexing runs in the background.")
        )
        layout.addWidget(self.paths, 1)
        layout.addLayout(row)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def add_paths(self, paths: list[Path]) -> None:
        known = set(self.chosen())
        for path in paths:
            if path not in known:
                self.paths.addItem(str(path))

    def embed_model(self) -> Path | None:
        """The embedding model chosen, or None for full text only."""
        value = self.meaning.currentData()
        return Path(value) if value else None

    def chosen(self) -> list[Path]:
        return [Path(self.paths.item(i).text()) for i in range(self.paths.count())]

    def _add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add files to the collection")
        self.add_paths([Path(f) for f in files])

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the collection")
        if folder:
            self.add_paths([Path(folder)])

    def _accept(self) -> None:
        if not self.name.text().strip():
            self._say("Give the collection a name.")
        elif not self.chosen():
            self._say("Add at least one file or folder.")
        else:
            self.accept()

    def _say(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
