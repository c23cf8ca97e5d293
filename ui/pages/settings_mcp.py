"""Settings → MCP servers: the app's ``mcp.json`` (the Claude Desktop / LM Studio format) as text, checked on Save
with one clear line for bad JSON or a bad shape (nothing is written then), and "Check servers" listing each server's
tools or its error. Servers start in the background; the chat picks the new file up on its next reply."""

from __future__ import annotations

import html
import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from core.chat.tools import ChatTools
from core.errors import HangarError
from core.tools.mcp import ServerTools
from ui.operations import run_in_background
from ui.theme import current_colors

logger = logging.getLogger(__name__)


class McpServersEditor(QFrame):
    def __init__(self, tools: ChatTools, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tools = tools
        self.setObjectName("Card")
        self.setMaximumWidth(760)
        title = QLabel("MCP servers")
        title.setStyleSheet("font-weight: 600;")
        hint = QLabel(
            f"Tools for the chat, as Claude Desktop and LM Studio write them: "
            f'{{"mcpServers": {{NAME: {{"command", "args", "env"}} or {{"url", "headers"}}}}}}. Kept in {tools.path}.'
        )
        hint.setWordWrap(True)
        hint.setObjectName("Muted")
        hint.setStyleSheet(f"color: {current_colors().muted};")
        self.text = QPlainTextEdit()
        self.text.setAccessibleName("mcp.json")
        self.text.setToolTip("The MCP servers the chat can use (JSON)")
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setMinimumHeight(120)
        self.text.setMaximumHeight(260)
        try:
            self.text.setPlainText(tools.text())
        except HangarError as exc:
            self.text.setPlainText("")
            logger.info("mcp.json not shown: %s", exc)
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("Check the JSON and save it; servers restart on the next reply that uses them")
        self.check_button = QPushButton("Check servers")
        self.check_button.setToolTip("Start each server and list its tools (or say why it does not answer)")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setObjectName("McpStatus")
        self.status.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.save_button.clicked.connect(self.save)
        self.check_button.clicked.connect(self.check)

    def save(self) -> bool:
        try:
            configs = self.tools.save(self.text.toPlainText())
        except HangarError as exc:
            self._say(str(exc), bad=True)
            return False
        self._say(f"Saved: {len(configs)} server(s).", bad=False)
        return True

    def check(self) -> None:
        if not self.save():
            return
        self.check_button.setEnabled(False)
        self._say("Starting the servers…", bad=False)
        tools = self.tools

        def check() -> list[ServerTools]:
            try:
                return tools.check()
            finally:
                tools.close()  # checked: the servers stop; the chat starts its own when a reply uses them

        run_in_background(check, on_success=self._checked, on_failure=self._failed, owner=self)

    def _checked(self, servers: list[ServerTools]) -> None:
        self.check_button.setEnabled(True)
        if not servers:
            self._say("No servers configured.", bad=False)
            return
        colors = current_colors()
        lines = []
        for server in servers:  # each server in its own colour: the ones that answer, the ones that do not
            if server.error:
                text, color = f"✗ {server.server}: {server.error}", colors.bad
            else:
                names = ", ".join(t.name for t in server.tools) or "no tools"
                text, color = f"✓ {server.server} ({server.transport}): {names}", colors.good
            lines.append(f"<span style='color: {color};'>{html.escape(text)}</span>")
        self.status.setStyleSheet("")
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setText("<br>".join(lines))
        self.status.show()

    def _failed(self, exc: Exception) -> None:
        self.check_button.setEnabled(True)
        self._say(str(exc), bad=True)

    def _say(self, text: str, *, bad: bool) -> None:
        colors = current_colors()
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setStyleSheet(f"color: {colors.bad if bad else colors.muted};")
        self.status.setText(text)
        self.status.show()
