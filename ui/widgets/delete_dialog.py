"""Confirmation before a model leaves the library, saying exactly what happens to its files and the space freed."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from core.models.types import LibraryEntry
from ui.widgets.library_table import SOURCE_LABELS, human_size

#: Stores Hangar never deletes from (they share files between models); the user's own tool does.
_NO_DELETE = {"ollama", "huggingface"}


class DeleteDialog(QDialog):
    def __init__(self, entry: LibraryEntry, freed_bytes: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setWindowTitle(f"Remove {entry.name}")
        owned = entry.origin.owns_files
        self._owned = owned
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.also_delete = QCheckBox(f"Also delete the files ({human_size(freed_bytes)})")
        self.also_delete.setVisible(not owned)
        self.also_delete.setToolTip(f"Delete the files in {entry.root} too, not only the library entry")
        if entry.source in _NO_DELETE and not owned:
            self.also_delete.setEnabled(False)
            self.also_delete.setToolTip(f"{SOURCE_LABELS[entry.source]} manages these files; delete them there.")
        if owned:
            self.message.setText(
                f"Delete <b>{entry.name}</b>? Its files in Hangar's models folder are deleted, "
                f"freeing <b>{human_size(freed_bytes)}</b>."
            )
        else:
            self.message.setText(
                f"Remove <b>{entry.name}</b> from your library? Its files stay where they are:<br>{entry.root}"
            )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.confirm_button = buttons.addButton("Delete" if owned else "Remove", QDialogButtonBox.ButtonRole.AcceptRole)
        self.confirm_button.setObjectName("Danger")
        self.confirm_button.setToolTip(
            "Delete the files from Hangar's models folder" if owned else "Remove it from the library"
        )
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setToolTip("Keep the model")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.also_delete)
        layout.addWidget(buttons)

    def delete_files(self) -> bool | None:
        """None: the library's default for this origin; True: delete the files of a linked or found model."""
        return True if not self._owned and self.also_delete.isChecked() else None
