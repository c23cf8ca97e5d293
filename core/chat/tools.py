"""Tools and documents of the window's conversations: which MCP servers a conversation uses (and how the model
must call them), the calls with their arguments, results and states (so a reopened conversation shows its cards),
the tools the user always allows, and the app's ``mcp.json`` (in the data folder) with its servers started on demand
and stopped with the app."""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HangarError, UsageError
from core.store import Store
from core.tools.config import APP_CONFIG_FILE, McpServerConfig, load_config, parse_config
from core.tools.mcp import McpTools, ServerTools

logger = logging.getLogger(__name__)

MCP_FILE = APP_CONFIG_FILE
EXAMPLE_CONFIG = '{\n  "mcpServers": {\n  }\n}\n'

SCHEMA = [
    """
    CREATE TABLE chat_conversation_options (
        conversation_id INTEGER PRIMARY KEY REFERENCES chat_conversations(id) ON DELETE CASCADE,
        servers TEXT NOT NULL DEFAULT '[]',
        tool_choice TEXT NOT NULL DEFAULT 'auto',
        collection TEXT
    );
    CREATE TABLE chat_tool_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        arguments TEXT NOT NULL DEFAULT '{}',
        result TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        seconds REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX chat_tool_calls_by_message ON chat_tool_calls(message_id, id);
    CREATE TABLE chat_tool_permissions (
        tool TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    """
]


class CallState(enum.StrEnum):
    PENDING = "pending"  # waiting for the user's answer
    RUNNING = "running"  # approved, the server is working on it
    DONE = "done"
    DENIED = "denied"
    FAILED = "failed"
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class ToolCallEntry:
    """One tool call of a reply, as its card shows it."""

    id: int
    message_id: int
    server: str
    tool: str
    arguments: Any
    result: str = ""
    state: CallState = CallState.PENDING
    seconds: float | None = None


@dataclass(frozen=True)
class ConversationOptions:
    """The MCP servers a conversation offers the model, how it must use them, and the collection it reads."""

    servers: tuple[str, ...] = ()
    tool_choice: str = "auto"  # "auto" | "required" | a tool's name
    collection: str | None = None


class ChatToolStore:
    """The tables above (in the app's SQLite store)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("chat_tools", SCHEMA)

    # -- options ---------------------------------------------------------------------------------------------------
    def options(self, conversation_id: int) -> ConversationOptions:
        row = self._store.query_one(
            "SELECT * FROM chat_conversation_options WHERE conversation_id = ?", (conversation_id,)
        )
        if row is None:
            return ConversationOptions()
        try:
            servers = tuple(str(s) for s in json.loads(row["servers"]))
        except (ValueError, TypeError):
            servers = ()
        return ConversationOptions(servers, row["tool_choice"] or "auto", row["collection"])

    def set_options(self, conversation_id: int, options: ConversationOptions) -> None:
        self._store.execute(
            "INSERT INTO chat_conversation_options (conversation_id, servers, tool_choice, collection)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(conversation_id) DO UPDATE SET servers = excluded.servers,"
            " tool_choice = excluded.tool_choice, collection = excluded.collection",
            (conversation_id, json.dumps(list(options.servers)), options.tool_choice, options.collection),
        )

    # -- calls -----------------------------------------------------------------------------------------------------
    def add_call(self, message_id: int, server: str, tool: str, arguments: Any, state: CallState) -> ToolCallEntry:
        cursor = self._store.execute(
            "INSERT INTO chat_tool_calls (message_id, server, tool, arguments, state, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (message_id, server, tool, json.dumps(arguments, ensure_ascii=False), state, time.time()),
        )
        return self.call(int(cursor.lastrowid or 0))

    def update_call(
        self, call_id: int, state: CallState, *, result: str | None = None, seconds: float | None = None
    ) -> ToolCallEntry:
        self._store.execute(
            "UPDATE chat_tool_calls SET state = ?, result = COALESCE(?, result), seconds = COALESCE(?, seconds)"
            " WHERE id = ?",
            (state, result, seconds, call_id),
        )
        return self.call(call_id)

    def call(self, call_id: int) -> ToolCallEntry:
        row = self._store.query_one("SELECT * FROM chat_tool_calls WHERE id = ?", (call_id,))
        assert row is not None
        return _entry(row)

    def calls(self, conversation_id: int) -> dict[int, list[ToolCallEntry]]:
        """Every call of a conversation, by the reply that made it, in order."""
        rows = self._store.query(
            "SELECT c.* FROM chat_tool_calls c JOIN chat_messages m ON m.id = c.message_id"
            " WHERE m.conversation_id = ? ORDER BY c.id",
            (conversation_id,),
        )
        found: dict[int, list[ToolCallEntry]] = {}
        for row in rows:
            entry = _entry(row)
            found.setdefault(entry.message_id, []).append(entry)
        return found

    def interrupt_pending(self) -> None:
        """Calls left pending or running by a closed app did not finish."""
        self._store.execute(
            "UPDATE chat_tool_calls SET state = ?, result = CASE WHEN result = '' THEN ? ELSE result END"
            " WHERE state IN (?, ?)",
            (CallState.FAILED, "Hangar closed before this call finished.", CallState.PENDING, CallState.RUNNING),
        )

    # -- "always allow" --------------------------------------------------------------------------------------------
    def always_allowed(self) -> set[str]:
        return {row["tool"] for row in self._store.query("SELECT tool FROM chat_tool_permissions")}

    def allow_always(self, tool: str) -> None:
        self._store.execute(
            "INSERT OR IGNORE INTO chat_tool_permissions (tool, created_at) VALUES (?, ?)", (tool, time.time())
        )

    def forget_permissions(self) -> None:
        self._store.execute("DELETE FROM chat_tool_permissions")


@dataclass
class ChatTools:
    """The app's ``mcp.json`` and its servers: one ``McpTools`` for every conversation, rebuilt when the file
    changes, closed with the app."""

    path: Path
    _tools: McpTools | None = None
    _stamp: tuple[float, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return EXAMPLE_CONFIG
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{self.path.name} cannot be read: {exc}") from None

    def configs(self) -> list[McpServerConfig]:
        if not self.path.exists():
            return []
        return load_config(self.path)

    def save(self, text: str) -> list[McpServerConfig]:
        """Check ``text`` (JSON in the Claude Desktop format) and write it; the servers restart on next use."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"Not valid JSON: {exc}.") from None
        configs = parse_config(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        temporary.replace(self.path)
        self.reset()
        return configs

    def servers(self) -> list[str]:
        """The configured servers' names ([] when the file is missing or wrong: ``check`` says why)."""
        try:
            return [c.name for c in self.configs()]
        except HangarError:
            return []

    def tools(self) -> McpTools:
        """The servers of the current file (started when first used)."""
        stamp = self._file_stamp()
        with self._lock:
            if self._tools is not None and stamp == self._stamp:
                return self._tools
            old, self._tools, self._stamp = self._tools, McpTools(self.configs()), stamp
        if old is not None:
            old.close()
        return self._tools

    def check(self) -> list[ServerTools]:
        """Each server with its tools or its error (starts them: not on the GUI thread)."""
        return self.tools().list_all()

    def reset(self) -> None:
        with self._lock:
            old, self._tools, self._stamp = self._tools, None, None
        if old is not None:
            old.close()

    close = reset

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime, info.st_size


def call_state(approved: bool, is_error: bool, result: str, denied: bool) -> CallState:
    """The state a finished call's card shows."""
    if denied:
        return CallState.DENIED
    if not is_error:
        return CallState.DONE
    if approved and "did not answer within" in result:
        return CallState.TIMED_OUT
    return CallState.FAILED


def _entry(row: Any) -> ToolCallEntry:
    try:
        arguments = json.loads(row["arguments"])
    except ValueError:
        arguments = row["arguments"]
    return ToolCallEntry(
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        server=row["server"],
        tool=row["tool"],
        arguments=arguments,
        result=row["result"],
        state=CallState(row["state"]),
        seconds=row["seconds"],
    )
