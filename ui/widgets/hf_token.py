"""The Hugging Face token box for the Settings page: checked with ``whoami`` off the GUI thread, stored in the OS
keyring (core.secrets), with a visible warning when only a session-only fallback exists. The token is never
shown again, logged or put in an error message."""

from __future__ import annotations

import html

import shiboken6
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from core.hub.client import HubClient
from core.secrets import SecretStore, TokenStatus, TokenStorage
from ui.operations import run_in_background
from ui.theme import current_colors


class HfTokenBox(QWidget):
    #: Emitted with the new status after a save or a removal.
    token_changed = Signal(object)

    def __init__(self, store: SecretStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store or SecretStore.shared()
        self.field = QLineEdit()
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setPlaceholderText("hf_…  (needed for gated models)")
        self.field.setAccessibleName("Hugging Face token")
        self.field.setToolTip(
            "A read token from huggingface.co/settings/tokens; needed only for gated and private models"
        )
        self.save = QPushButton("Check and save")
        self.save.setToolTip("Check the token with the Hub, then keep it in the system keyring (never in a file)")
        self.remove = QPushButton("Remove")
        self.remove.setToolTip("Delete the token from the system keyring")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setObjectName("Warning")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.field, 1)
        row.addWidget(self.save)
        row.addWidget(self.remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.warning)
        self.save.clicked.connect(self._save)
        self.field.returnPressed.connect(self._save)
        self.remove.clicked.connect(self._remove)
        self._acted = False
        self.status.setText("Checking the keyring…")
        self.warning.setVisible(False)
        self.remove.setEnabled(False)
        # A keyring lookup can block (an unlock prompt): never on the GUI thread.
        run_in_background(self.store.status, on_success=self._show_if_alive)

    def _show_if_alive(self, status: TokenStatus) -> None:
        # Skipped when the person already saved or removed a token: that answer is newer.
        if shiboken6.isValid(self) and not self._acted:
            self._show(status)

    def _show(self, status: TokenStatus, error: str | None = None) -> None:
        colors = current_colors()
        words = {
            TokenStorage.NONE: "No token set.",
            TokenStorage.KEYRING: "Token stored in the system keyring.",
            TokenStorage.SESSION: "Token kept for this session only.",
            TokenStorage.ENVIRONMENT: "Using the HF_TOKEN environment variable.",
        }[status.storage]
        if status.user:
            words += f" Signed in as {status.user}."
        if error:
            words = f"<span style='color:{colors.bad}'>{html.escape(error)}</span>"
        self.status.setText(words)
        self.warning.setText(
            f"<span style='color:{colors.warn}'>⚠ {html.escape(status.warning)}</span>" if status.warning else ""
        )
        self.warning.setVisible(bool(status.warning))
        self.remove.setEnabled(status.storage in (TokenStorage.KEYRING, TokenStorage.SESSION))

    def _save(self) -> None:
        token = self.field.text()
        if not token.strip():
            return
        self._acted = True
        self.save.setEnabled(False)
        self.status.setText("Checking the token with Hugging Face…")
        store = self.store

        def done(status: TokenStatus) -> None:
            if shiboken6.isValid(self):
                self.save.setEnabled(True)
                self.field.clear()
                self._show(status)
                self.token_changed.emit(status)

        def failed(error: Exception) -> None:
            if shiboken6.isValid(self):
                self.save.setEnabled(True)
                self._show(store.status(), error=str(error))

        run_in_background(lambda: store.set_token(token, HubClient()), on_success=done, on_failure=failed)

    def _remove(self) -> None:
        self._acted = True
        store = self.store

        def clear() -> TokenStatus:
            store.clear()
            return store.status()

        def done(status: TokenStatus) -> None:
            if shiboken6.isValid(self):
                self._show(status)
                self.token_changed.emit(status)

        run_in_background(clear, on_success=done)
