"""The import dialog: what was recognised in the dropped or chosen paths, and how to bring it in (copy, move or
link in place). It only decides; the page runs the import as a background job."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QRadioButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.models.types import ImportMode, ImportPreview
from ui.theme import current_colors
from ui.widgets.library_table import FORMAT_LABELS, human_params, human_size

_MODE_TEXT = {
    ImportMode.COPY: ("Copy into Hangar's models folder", "The originals stay where they are."),
    ImportMode.MOVE: ("Move into Hangar's models folder", "Frees the original location; instant on the same disk."),
    ImportMode.LINK: ("Link in place", "Nothing is copied; the model stays usable only while the files stay there."),
}


class ImportDialog(QDialog):
    def __init__(self, preview: ImportPreview, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = preview
        self.setWindowTitle("Import models")
        self.setMinimumWidth(640)
        count = len(preview.new)
        heading = QLabel(
            f"<b>{count} model{'s' if count != 1 else ''} to import</b> ({human_size(preview.total_bytes)})"
            if count
            else "<b>Nothing new to import</b>"
        )
        self.items = QTreeWidget()
        self.items.setObjectName("ImportItems")
        self.items.setHeaderLabels(["Model", "Format", "Status", "Details"])
        self.items.setRootIsDecorated(False)
        self.items.setAlternatingRowColors(True)
        self.items.setAccessibleName("Models found")
        self.items.setToolTip("What was found in the chosen files and folders, and whether each can be imported")
        colors = current_colors()
        for candidate in preview.new:
            meta = candidate.metadata
            details = " · ".join(
                x
                for x in (
                    meta.architecture,
                    human_params(meta.parameter_count),
                    meta.quant,
                    human_size(candidate.size_bytes),
                )
                if x and x != "—"
            )
            self._add(candidate.name, FORMAT_LABELS[candidate.format], details, "New", str(candidate.root), None)
        for candidate, existing in preview.duplicates:
            self._add(
                candidate.name,
                FORMAT_LABELS[candidate.format],
                human_size(candidate.size_bytes),
                f"Already in your library as {existing.name}",
                str(candidate.root),
                QColor(colors.muted),
            )
        for problem in preview.problems:
            self._add(
                problem.path.name, "—", problem.message, "Not a usable model", str(problem.path), QColor(colors.bad)
            )
        for column in range(3):
            self.items.resizeColumnToContents(column)
        self.items.setColumnWidth(2, min(self.items.columnWidth(2), 260))

        self.modes = QButtonGroup(self)
        mode_box = QVBoxLayout()
        for mode, (title, hint) in _MODE_TEXT.items():
            button = QRadioButton(title)
            button.setObjectName(f"mode-{mode.value}")
            button.setToolTip(hint)
            self.modes.addButton(button)
            button.setProperty("mode", mode.value)
            mode_box.addWidget(button)
            if mode == ImportMode.COPY:
                button.setChecked(True)
        self.mode_hint = QLabel(_MODE_TEXT[ImportMode.COPY][1])
        self.mode_hint.setObjectName("PageSubtitle")
        self.modes.buttonToggled.connect(lambda *_: self.mode_hint.setText(_MODE_TEXT[self.mode()][1]))

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton(
            f"Import {count}" if count else "Import", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.import_button.setObjectName("Primary")
        self.import_button.setEnabled(bool(count))
        self.import_button.setToolTip("Bring the new models into your library the way chosen above")
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setToolTip("Close without importing anything")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.items, 1)
        layout.addLayout(mode_box)
        layout.addWidget(self.mode_hint)
        layout.addWidget(self.buttons)

    def _add(self, name: str, fmt: str, details: str, status: str, tooltip: str, color: QColor | None) -> None:
        item = QTreeWidgetItem([name, fmt, status, details])
        item.setToolTip(0, tooltip)
        item.setToolTip(3, details)
        if color is not None:
            for column in range(4):
                item.setForeground(column, color)
        self.items.addTopLevelItem(item)

    def mode(self) -> ImportMode:
        checked = self.modes.checkedButton()
        return ImportMode(checked.property("mode")) if checked else ImportMode.COPY

    def set_mode(self, mode: ImportMode) -> None:
        for button in self.modes.buttons():
            if button.property("mode") == mode.value:
                button.setChecked(True)

    def paths_to_import(self) -> list[Path]:
        return [c.root for c in self.preview.new]

    def statuses(self) -> list[tuple[str, str]]:
        """(name, status) of every row, in order (for tests and accessibility)."""
        return [
            (self.items.topLevelItem(i).text(0), self.items.topLevelItem(i).text(2))
            for i in range(self.items.topLevelItemCount())
        ]
