"""The chat page's tools: a "Tools" button whose menu turns the app's MCP servers on for the conversation and says
how the model uses them (it decides, or it must call a tool), a status line (each server's tools, or one line about
the one that did not start), and the session's tool events on the transcript's cards."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QLabel, QMenu, QPushButton

from core.chat.session_tools import ToolCallChanged, ToolNotice
from core.chat.tools import ConversationOptions
from core.tools.mcp import ServerTools
from ui.operations import run_in_background
from ui.theme import current_colors

if TYPE_CHECKING:
    from core.chat.service import ChatService
    from ui.pages.chat_transcript import TranscriptView

logger = logging.getLogger(__name__)


class ToolsBarMixin:
    """Mixed into ``ChatPage`` (which provides ``service``, ``transcript`` and ``conversation_id``)."""

    service: ChatService
    transcript: TranscriptView
    conversation_id: int | None

    def _build_tools_bar(self) -> None:
        #: The options a new chat starts with (the open conversation's, or what was chosen before any).
        self.chat_options = ConversationOptions()
        self._server_tools: dict[str, tuple[str, ...]] = {}
        self.tools_button = QPushButton("Tools")
        self.tools_button.setToolTip("Let the model call tools of your MCP servers (Settings → MCP servers)")
        self.tools_button.setAccessibleName("Tools")
        self.tools_menu = QMenu(self.tools_button)  # type: ignore[arg-type]
        self.tools_menu.aboutToShow.connect(self._fill_tools_menu)
        self.tools_button.setMenu(self.tools_menu)
        self.tools_status = QLabel()
        self.tools_status.setObjectName("ToolsStatus")
        self.tools_status.setWordWrap(True)
        self.tools_status.hide()
        self.transcript.tool_answered.connect(self._on_tool_answered)
        self._fill_tools_menu()

    # -- the menu ----------------------------------------------------------------------------------------------------
    def _fill_tools_menu(self) -> None:
        menu = self.tools_menu
        menu.clear()
        servers = self.service.tools.servers()
        if not servers:
            empty = menu.addAction("No MCP servers yet: add them in Settings → MCP servers")
            empty.setEnabled(False)
        for server in servers:
            action = menu.addAction(f"Use {server}")
            action.setCheckable(True)
            action.setChecked(server in self.chat_options.servers)
            action.setData(server)
            action.toggled.connect(lambda on, name=server: self._toggle_server(name, on))
        menu.addSeparator()
        group = QActionGroup(menu)
        choices = [("auto", "The model decides when to call a tool"), ("required", "The model must call a tool")]
        for server in self.chat_options.servers:
            choices += [(tool, f"The model must call {tool}") for tool in self._server_tools.get(server, ())]
        for value, label in choices:
            action = QAction(label, menu)
            action.setCheckable(True)
            action.setData(value)
            action.setChecked(self.chat_options.tool_choice == value)
            action.setEnabled(bool(self.chat_options.servers))
            action.triggered.connect(lambda _=False, v=value: self.set_tools(self.chat_options.servers, v))
            group.addAction(action)
            menu.addAction(action)

    def tools_action(self, server: str) -> QAction:
        """The menu's "Use SERVER" entry (tests and keyboard users)."""
        self._fill_tools_menu()
        return next(a for a in self.tools_menu.actions() if a.data() == server and a.text().startswith("Use "))

    def _toggle_server(self, server: str, on: bool) -> None:
        servers = [s for s in self.chat_options.servers if s != server] + ([server] if on else [])
        self.set_tools(tuple(servers), self.chat_options.tool_choice)

    def set_tools(self, servers: tuple[str, ...], choice: str = "auto") -> None:
        """Use these servers in this conversation (and in new chats), and how the model must call them."""
        self.chat_options = ConversationOptions(servers, choice, self.chat_options.collection)
        self._save_options()
        self._show_tools_state()
        if servers:
            self._check_servers(servers)

    def _save_options(self) -> None:
        if self.conversation_id is not None:
            self.service.tool_store.set_options(self.conversation_id, self.chat_options)

    def _load_options(self, conversation_id: int) -> None:
        self.chat_options = self.service.tool_store.options(conversation_id)
        self._show_tools_state()

    def _show_tools_state(self) -> None:
        count = len(self.chat_options.servers)
        self.tools_button.setText(f"Tools ({count})" if count else "Tools")
        if not count:
            self.tools_status.hide()

    def _check_servers(self, servers: tuple[str, ...]) -> None:
        self._tools_line("Starting " + ", ".join(servers) + "…", bad=False)
        tools = self.service.tools

        def check() -> list[ServerTools]:
            hub = tools.tools()
            return [s for s in hub.list_all() if s.server in servers]

        run_in_background(check, on_success=self._servers_checked, on_failure=self._servers_failed, owner=self)  # type: ignore[arg-type]

    def _servers_checked(self, found: list[ServerTools]) -> None:
        parts, bad = [], False
        for server in found:
            if server.error:
                parts.append(server.error)
                bad = True
            else:
                self._server_tools[server.server] = tuple(t.name for t in server.tools)
                parts.append(f"{server.server}: {len(server.tools)} tool(s)")
        if parts:
            self._tools_line(" · ".join(parts), bad=bad)

    def _servers_failed(self, exc: Exception) -> None:
        self._tools_line(str(exc), bad=True)

    def _tools_line(self, text: str, *, bad: bool) -> None:
        colors = current_colors()
        line = " ".join(text.split())
        self.tools_status.setText(line if len(line) <= 160 else line[:159] + "…")
        self.tools_status.setToolTip(text)
        self.tools_status.setStyleSheet(f"color: {colors.bad if bad else colors.muted};")
        self.tools_status.show()

    # -- events ------------------------------------------------------------------------------------------------------
    def _on_tool_event(self, event: Any) -> bool:
        """Handle a session's tool event; False when it is not one."""
        if isinstance(event, ToolCallChanged):
            self.transcript.upsert_call(event.call)
            return True
        if isinstance(event, ToolNotice):
            self._tools_line(event.text, bad=True)
            return True
        return False

    def _on_tool_answered(self, call_id: int, decision: object) -> None:
        if self.conversation_id is not None:
            self.service.session(self.conversation_id).answer(call_id, decision)  # type: ignore[arg-type]
