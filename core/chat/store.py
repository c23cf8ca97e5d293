"""Conversations, persisted in SQLite: title, model, sampling settings, system prompt and messages.

``ChatStore`` is the only code that touches the chat tables. Replies are written while they stream (see
``core.chat.session``), so a crash of the engine or of the app loses at most the last fraction of a second; a
reply that was still streaming when the app died is marked ``interrupted`` the next time the store opens.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from core.engine.images import MAX_IMAGES, ChatImage, image_from_bytes
from core.engine.params import GenerationParams
from core.engine.protocol import GenerationStats
from core.errors import NotFoundError, UsageError
from core.store import Store

logger = logging.getLogger(__name__)

SCHEMA = [
    """
    CREATE TABLE chat_conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        engine TEXT NOT NULL DEFAULT '',
        system_prompt TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE chat_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES chat_conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'done',
        error TEXT NOT NULL DEFAULT '',
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        tokens_per_second REAL,
        time_to_first_token_ms REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX chat_messages_by_conversation ON chat_messages(conversation_id, position);
    """,
    # 2: each reply names the model that wrote it (older replies: NULL, unknown)
    "ALTER TABLE chat_messages ADD COLUMN model TEXT;",
    # 3: the passages a reply read (its citations) and the files attached whole to a message (JSON lists)
    "ALTER TABLE chat_messages ADD COLUMN sources TEXT; ALTER TABLE chat_messages ADD COLUMN attachments TEXT;",
    # 4: the images a message shows the model (a copy of their bytes, checked as the engine checks them)
    """
    CREATE TABLE chat_images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX chat_images_by_message ON chat_images(message_id, id);
    ALTER TABLE chat_messages ADD COLUMN image_tokens INTEGER;
    """,
]

DEFAULT_TITLE = "New chat"


class MessageState(enum.StrEnum):
    DONE = "done"
    STREAMING = "streaming"
    STOPPED = "stopped"  # the user pressed Stop: the partial reply is kept
    FAILED = "failed"  # the engine failed or crashed: the partial reply and the reason are kept
    INTERRUPTED = "interrupted"  # the app itself ended while the reply streamed


#: A conversation's sampling settings are the engine's generation parameters: one type, one set of defaults
#: (``core.engine.params``). The name stays for the chat page and the store.
ChatSettings = GenerationParams


#: Sampling presets offered in the chat page; "Balanced" is the default.
PRESETS: dict[str, ChatSettings] = {
    "Balanced": ChatSettings(),
    "Precise": ChatSettings(temperature=0.2, top_p=0.9, top_k=20, min_p=0.05, repeat_penalty=1.05),
    "Creative": ChatSettings(temperature=1.0, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.1),
    "Deterministic": ChatSettings(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, repeat_penalty=1.0, seed=0),
}


def preset_name(settings: ChatSettings) -> str | None:
    """The preset whose sampling values ``settings`` has (max tokens, stop strings and format aside)."""
    sampling = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")
    for name, preset in PRESETS.items():
        if all(getattr(settings, key) == getattr(preset, key) for key in sampling):
            return name
    return None


def apply_preset(settings: ChatSettings, name: str) -> ChatSettings:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise UsageError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.") from None
    keys = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")
    return replace(settings, **{key: getattr(preset, key) for key in keys})


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    model: str = ""
    engine: str = ""
    system_prompt: str = ""
    settings: ChatSettings = field(default_factory=ChatSettings)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    position: int
    role: str  # "user" | "assistant"
    content: str
    state: MessageState = MessageState.DONE
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    time_to_first_token_ms: float | None = None
    #: The display name of the model that wrote this reply (None: a user message, or a reply older than the column).
    model: str | None = None
    #: The passages the reply read, numbered as it cites them (``core.docs.service.Sources.to_json``).
    sources: tuple[dict[str, Any], ...] = ()
    #: Files that went into the prompt whole with this message (``core.chat.documents.Attachment.to_json``).
    attachments: tuple[dict[str, Any], ...] = ()
    #: Images shown to the model with this message (their bytes are kept in the store with the conversation).
    images: tuple[ChatImage, ...] = ()
    #: Of a reply's ``prompt_tokens``, the positions its conversation's images took.
    image_tokens: int | None = None


class ChatStore:
    """Conversations and messages in the app's SQLite store (thread-safe: the store serialises access)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("chat", SCHEMA)
        interrupted = store.execute(
            "UPDATE chat_messages SET state = ?, error = ? WHERE state = ?",
            (
                MessageState.INTERRUPTED,
                "Hangar closed while this reply was being written.",
                MessageState.STREAMING,
            ),
        ).rowcount
        if interrupted:
            logger.warning("marked %d reply(ies) interrupted by the last shutdown", interrupted)

    # -- conversations ---------------------------------------------------------------------------------------
    def create(
        self,
        *,
        title: str = DEFAULT_TITLE,
        model: str = "",
        engine: str = "",
        system_prompt: str = "",
        settings: ChatSettings | None = None,
    ) -> Conversation:
        now = time.time()
        settings = (settings or ChatSettings()).validated()
        cursor = self._store.execute(
            "INSERT INTO chat_conversations"
            " (title, model, engine, system_prompt, settings, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_clean_title(title), model, engine, system_prompt, settings.to_json(), now, now),
        )
        return self.get(int(cursor.lastrowid or 0))

    def get(self, conversation_id: int) -> Conversation:
        row = self._store.query_one("SELECT * FROM chat_conversations WHERE id = ?", (conversation_id,))
        if row is None:
            raise NotFoundError(f"There is no conversation {conversation_id}; it may have been deleted.")
        return _conversation(row)

    def conversations(self, search: str = "") -> list[Conversation]:
        """Newest first; ``search`` matches titles and message text (case-insensitive)."""
        if not search.strip():
            rows = self._store.query("SELECT * FROM chat_conversations ORDER BY updated_at DESC, id DESC")
        else:
            pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self._store.query(
                "SELECT * FROM chat_conversations c WHERE c.title LIKE ? ESCAPE '\\' OR EXISTS ("
                " SELECT 1 FROM chat_messages m"
                " WHERE m.conversation_id = c.id AND m.content LIKE ? ESCAPE '\\')"
                " ORDER BY updated_at DESC, id DESC",
                (pattern, pattern),
            )
        return [_conversation(row) for row in rows]

    def rename(self, conversation_id: int, title: str) -> Conversation:
        if not title.strip():
            raise UsageError("A conversation needs a title.")
        self.update(conversation_id, title=title)
        return self.get(conversation_id)

    def update(self, conversation_id: int, **changes: Any) -> Conversation:
        """Change ``title``, ``model``, ``engine``, ``system_prompt`` or ``settings``."""
        allowed = {"title", "model", "engine", "system_prompt", "settings"}
        unknown = set(changes) - allowed
        if unknown:
            raise UsageError(f"Cannot change {', '.join(sorted(unknown))} of a conversation.")
        self.get(conversation_id)
        values = dict(changes)
        if "settings" in values:
            values["settings"] = values["settings"].validated().to_json()
        if "title" in values:
            values["title"] = _clean_title(values["title"])
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{key} = ?" for key in values)
        self._store.execute(
            f"UPDATE chat_conversations SET {assignments} WHERE id = ?", (*values.values(), conversation_id)
        )
        return self.get(conversation_id)

    def delete(self, conversation_id: int) -> None:
        self.get(conversation_id)
        self._store.execute("DELETE FROM chat_conversations WHERE id = ?", (conversation_id,))

    # -- messages --------------------------------------------------------------------------------------------
    def messages(self, conversation_id: int) -> list[Message]:
        rows = self._store.query(
            "SELECT * FROM chat_messages WHERE conversation_id = ? ORDER BY position", (conversation_id,)
        )
        images = self._images(
            "SELECT i.* FROM chat_images i JOIN chat_messages m ON m.id = i.message_id WHERE m.conversation_id = ?"
            " ORDER BY i.id",
            (conversation_id,),
        )
        return [_message(row, images.get(int(row["id"]), ())) for row in rows]

    def message(self, message_id: int) -> Message:
        row = self._store.query_one("SELECT * FROM chat_messages WHERE id = ?", (message_id,))
        if row is None:
            raise NotFoundError(f"There is no message {message_id}.")
        images = self._images("SELECT * FROM chat_images WHERE message_id = ? ORDER BY id", (message_id,))
        return _message(row, images.get(message_id, ()))

    def _images(self, sql: str, params: tuple[Any, ...]) -> dict[int, tuple[ChatImage, ...]]:
        found: dict[int, list[ChatImage]] = {}
        for row in self._store.query(sql, params):
            image = ChatImage(bytes(row["data"]), row["mime"], int(row["width"]), int(row["height"]), row["name"])
            found.setdefault(int(row["message_id"]), []).append(image)
        return {key: tuple(value) for key, value in found.items()}

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        state: MessageState = MessageState.DONE,
        *,
        model: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        images: tuple[ChatImage, ...] = (),
    ) -> Message:
        if role not in ("user", "assistant"):
            raise UsageError(f"A message's role is user or assistant, not {role!r}.")
        if len(images) > MAX_IMAGES:
            raise UsageError(f"{len(images)} images in one message; up to {MAX_IMAGES} are taken.")
        checked = [image_from_bytes(i.data, i.name) for i in images]  # the bounds the engine keeps, before storing
        now = time.time()
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM chat_messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            cursor = conn.execute(
                "INSERT INTO chat_messages"
                " (conversation_id, position, role, content, state, model, attachments, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    int(row[0]),
                    role,
                    content,
                    state,
                    model,
                    json.dumps(attachments) if attachments else None,
                    now,
                ),
            )
            message_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT INTO chat_images (message_id, name, mime, width, height, data) VALUES (?, ?, ?, ?, ?, ?)",
                [(message_id, i.name, i.mime, i.width, i.height, i.data) for i in checked],
            )
            conn.execute("UPDATE chat_conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return self.message(message_id)

    def append_text(self, message_id: int, text: str) -> None:
        """Append streamed text to a reply (called a few times a second while it streams)."""
        if text:
            self._store.execute("UPDATE chat_messages SET content = content || ? WHERE id = ?", (text, message_id))

    def set_sources(self, message_id: int, sources: list[dict[str, Any]]) -> Message:
        self._store.execute(
            "UPDATE chat_messages SET sources = ? WHERE id = ?", (json.dumps(sources) if sources else None, message_id)
        )
        return self.message(message_id)

    def set_content(self, message_id: int, content: str) -> Message:
        self._store.execute("UPDATE chat_messages SET content = ? WHERE id = ?", (content, message_id))
        return self.message(message_id)

    def finish_message(
        self,
        message_id: int,
        content: str,
        state: MessageState,
        *,
        stats: GenerationStats | None = None,
        error: str = "",
    ) -> Message:
        self._store.execute(
            "UPDATE chat_messages SET content = ?, state = ?, error = ?, prompt_tokens = ?,"
            " completion_tokens = ?, tokens_per_second = ?, time_to_first_token_ms = ?, image_tokens = ? WHERE id = ?",
            (
                content,
                state,
                error,
                stats.prompt_tokens if stats else None,
                stats.completion_tokens if stats else None,
                stats.tokens_per_second if stats else None,
                stats.time_to_first_token_ms if stats else None,
                stats.image_tokens if stats and stats.image_tokens else None,
                message_id,
            ),
        )
        return self.message(message_id)

    def delete_from(self, conversation_id: int, position: int) -> None:
        """Delete the message at ``position`` and everything after it (regenerate, edit and resend)."""
        self._store.execute(
            "DELETE FROM chat_messages WHERE conversation_id = ? AND position >= ?",
            (conversation_id, position),
        )


def title_from(text: str, limit: int = 48) -> str:
    """A conversation title made from its first message."""
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def _clean_title(title: str) -> str:
    return " ".join(title.split())[:200] or DEFAULT_TITLE


def _conversation(row: Any) -> Conversation:
    return Conversation(
        id=int(row["id"]),
        title=row["title"],
        model=row["model"],
        engine=row["engine"],
        system_prompt=row["system_prompt"],
        settings=ChatSettings.from_json(row["settings"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def _message(row: Any, images: tuple[ChatImage, ...] = ()) -> Message:
    return Message(
        id=int(row["id"]),
        conversation_id=int(row["conversation_id"]),
        position=int(row["position"]),
        role=row["role"],
        content=row["content"],
        state=MessageState(row["state"]),
        error=row["error"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        tokens_per_second=row["tokens_per_second"],
        time_to_first_token_ms=row["time_to_first_token_ms"],
        model=row["model"],
        sources=_json_list(row["sources"]),
        attachments=_json_list(row["attachments"]),
        images=images,
        image_tokens=row["image_tokens"],
    )


def _json_list(text: str | None) -> tuple[dict[str, Any], ...]:
    if not text:
        return ()
    try:
        items = json.loads(text)
    except ValueError:
        return ()
    return tuple(item for item in items if isinstance(item, dict)) if isinstance(items, list) else ()
