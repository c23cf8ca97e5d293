"""A conversation bound to a loaded engine: send, regenerate, edit and resend, continue, stop.

Replies stream from the engine host's reader thread straight into the store (a few writes a second), so the
conversation survives an engine crash or a killed app. Listeners (the chat page, the CLI) get typed events on
``ChatSession.events``; they run on the engine host's thread, so the UI re-emits them through its bridge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.chat.documents import Attachment, adhoc_collection, retrieve
from core.chat.session_tools import ToolCallChanged, ToolNotice, ToolReplies
from core.chat.store import DEFAULT_TITLE, ChatStore, Message, MessageState, title_from
from core.engine.host import EngineHost
from core.engine.images import MAX_IMAGES, NO_PROJECTOR, ChatImage, count_images
from core.engine.protocol import (
    ChatMessage,
    EngineCrashed,
    EngineEvent,
    EngineRecovering,
    GenerationFinished,
    GenerationStats,
    RequestFailed,
    TokenChunk,
)
from core.errors import CancelledError, EngineError, UnsupportedModelError, UsageError
from core.events import EventHook

if TYPE_CHECKING:
    from core.chat.tools import ChatTools, ChatToolStore
    from core.docs.service import DocumentService, Sources

logger = logging.getLogger(__name__)

#: Share of the context at which the meter warns that the oldest messages will soon be left out.
WARN_FRACTION = 0.8


@dataclass(frozen=True)
class ContextUsage:
    """Tokens the conversation uses, the model's context length, and the room kept for the next reply."""

    used: int
    limit: int
    reserved: int = 0
    left_out: int = 0  # messages left out of the last prompt because they no longer fit

    @property
    def fraction(self) -> float:
        return min(1.0, (self.used + self.reserved) / self.limit) if self.limit else 0.0

    @property
    def level(self) -> str:
        if self.left_out or self.used + self.reserved > self.limit:
            return "full"
        return "warning" if self.fraction >= WARN_FRACTION else "ok"

    def describe(self) -> str:
        text = f"{self.used:,} / {self.limit:,} tokens"
        if self.left_out:
            return f"{text} — the oldest {self.left_out} message(s) no longer fit and are left out"
        if self.level == "full":
            return f"{text} — the next reply will leave out the oldest messages"
        if self.level == "warning":
            return f"{text} — nearly full: the oldest messages will soon be left out"
        return text


# events
@dataclass(frozen=True)
class ReplyStarted:
    conversation_id: int
    message: Message


@dataclass(frozen=True)
class ReplyDelta:
    conversation_id: int
    message_id: int
    text: str


@dataclass(frozen=True)
class ReplyFinished:
    """The reply ended: ``message.state`` says how (done, stopped, failed) and ``message.error`` why."""

    conversation_id: int
    message: Message
    usage: ContextUsage | None


@dataclass(frozen=True)
class ReplyRestarted:
    """The engine crashed while writing the reply and starts it over in safe mode; ``notice`` says what crashed
    and what was changed, in plain words. The text streamed so far is void."""

    conversation_id: int
    message_id: int
    notice: str


SessionEvent = ReplyStarted | ReplyDelta | ReplyRestarted | ReplyFinished | ToolCallChanged | ToolNotice


@dataclass
class _Active:
    request_id: int | None
    message_id: int
    prefix: str  # text the reply already had (continue)
    text: str = ""
    pending: str = ""
    last_flush: float = 0.0
    reserved: int = 0
    left_out: int = 0


class ChatSession(ToolReplies):
    #: How often streamed text is written to the store.
    FLUSH_SECONDS = 0.1

    def __init__(
        self,
        chats: ChatStore,
        host: EngineHost,
        conversation_id: int,
        *,
        model_name: Callable[[], str | None] | None = None,
        tools: ChatTools | None = None,
        tool_store: ChatToolStore | None = None,
        docs: Callable[[], DocumentService] | None = None,
    ) -> None:
        self.chats = chats
        #: The app's MCP servers and where calls are kept (the window's chat; None: a reply never calls tools).
        self.tools, self.tool_store = tools, tool_store
        #: The app's document collections (None: replies never read documents).
        self.docs = docs
        self._init_tools()
        self._tool_pending, self._tool_flushed = "", 0.0
        #: The loaded model's display name, written on each reply (default: the loaded file's name).
        self.model_name = model_name or self._file_name
        self.host = host
        self.conversation_id = conversation_id
        chats.get(conversation_id)  # NotFoundError early
        self.events: EventHook[[SessionEvent]] = EventHook()
        self.usage: ContextUsage | None = None
        self._lock = threading.RLock()
        self._active: _Active | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._last: Message | None = None
        self._disconnect = host.events.connect(self._on_engine_event)

    def close(self) -> None:
        self._disconnect()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    # -- user actions ----------------------------------------------------------------------------------------
    def send(self, text: str, attachments: Sequence[Attachment] = (), images: Sequence[ChatImage] = ()) -> Message:
        """Add a user message (with files attached whole, and images for a vision model) and start the reply;
        returns the streaming reply. A model without a projector refuses images before anything is stored."""
        if not text.strip():
            raise UsageError("Type a message first.")
        self._require_ready(len(images))
        conversation = self.chats.get(self.conversation_id)
        if conversation.title == DEFAULT_TITLE and not self.chats.messages(self.conversation_id):
            self.chats.update(self.conversation_id, title=title_from(text))
        attached = [a.to_json() for a in attachments]
        self.chats.add_message(self.conversation_id, "user", text, attachments=attached, images=tuple(images))
        return self._start_reply()

    def regenerate(self) -> Message:
        """Replace the last reply with a new one."""
        self._require_ready()
        messages = self.chats.messages(self.conversation_id)
        if not messages:
            raise UsageError("There is nothing to regenerate yet.")
        if messages[-1].role == "assistant":
            self.chats.delete_from(self.conversation_id, messages[-1].position)
        return self._start_reply()

    def edit_and_resend(self, message_id: int, text: str) -> Message:
        """Change one of your messages, drop everything after it, and get a new reply."""
        if not text.strip():
            raise UsageError("The message is empty.")
        self._require_ready()
        message = self.chats.message(message_id)
        if message.conversation_id != self.conversation_id or message.role != "user":
            raise UsageError("Only your own messages in this conversation can be edited.")
        self.chats.set_content(message_id, text)
        self.chats.delete_from(self.conversation_id, message.position + 1)
        return self._start_reply()

    def continue_reply(self) -> Message:
        """Let the model go on writing its last reply (after Stop, or when it ran out of tokens)."""
        self._require_ready()
        messages = self.chats.messages(self.conversation_id)
        if not messages or messages[-1].role != "assistant":
            raise UsageError("There is no reply to continue.")
        return self._start_reply(continue_message=messages[-1])

    def stop(self) -> None:
        if self._stop_tools():
            return
        with self._lock:
            request_id = self._active.request_id if self._active is not None else None
        if request_id is not None:
            self.host.cancel(request_id)

    def wait(self, timeout: float | None = None) -> Message:
        """Block until the current reply ends (CLI and tests); return it."""
        if not self._idle.wait(timeout):
            raise EngineError("The reply did not finish in time.")
        assert self._last is not None
        return self._last

    def history(self) -> list[ChatMessage]:
        """What the model sees: the system prompt, then every message with text."""
        conversation = self.chats.get(self.conversation_id)
        items = [ChatMessage("system", conversation.system_prompt)] if conversation.system_prompt.strip() else []
        for m in self.chats.messages(self.conversation_id):
            files = [Attachment.from_json(a).prompt_text() for a in m.attachments]
            content = "\n\n".join([*files, m.content]) if files and m.content else m.content
            if content or m.images:
                items.append(ChatMessage(m.role, content, images=m.images))
        return items

    def refresh_usage(self) -> ContextUsage | None:
        """Count the conversation's tokens with the loaded model (asks the engine: not on the GUI thread)."""
        model = self.host.model
        if model is None or self.busy:
            return self.usage
        settings = self.chats.get(self.conversation_id).settings
        reserved = min(settings.max_tokens, model.context_length // 4)
        self.usage = ContextUsage(self.host.count_tokens(self.history()), model.context_length, reserved)
        return self.usage

    # -- internals -------------------------------------------------------------------------------------------
    def _retrieve(self) -> Sources | None:
        """Passages for the last question from the conversation's collection and its dropped long files."""
        if self.docs is None or self.tool_store is None:
            return None
        options = self.tool_store.options(self.conversation_id)
        names = [n for n in (options.collection, adhoc_collection(self.conversation_id)) if n]
        question = next(
            (m.content for m in reversed(self.chats.messages(self.conversation_id)) if m.role == "user"), ""
        )
        if not question.strip():
            return None
        docs = self.docs()
        if options.collection is None and not any(c.name == names[-1] for c in docs.index.collections()):
            return None
        sources, problems = retrieve(docs, names, question)
        for problem in problems:
            self.events.emit(ToolNotice(self.conversation_id, problem))
        return sources

    def _file_name(self) -> str | None:
        model = self.host.model
        if model is None:
            return None
        path = Path(model.path)
        return path.stem if path.suffix == ".gguf" else path.name

    def _require_ready(self, new_images: int = 0) -> None:
        if self.busy:
            raise UsageError("A reply is still being written; stop it first.")
        model = self.host.model
        if model is None:
            raise EngineError("No model is loaded.", hint="Load a model for this chat first.")
        shown = count_images(self.history()) + new_images
        # the conversation shows images: a model without its projector refuses before anything changes
        if shown and not model.vision:
            raise UnsupportedModelError(NO_PROJECTOR)
        if shown > MAX_IMAGES:
            raise UsageError(f"{shown} images in one conversation; up to {MAX_IMAGES} are taken. Start a new chat.")

    def _start_reply(self, continue_message: Message | None = None) -> Message:
        conversation = self.chats.get(self.conversation_id)
        settings = conversation.settings
        params = replace(settings.validated(), continue_last=continue_message is not None)
        sources = self._retrieve() if continue_message is None else None
        history = self.history()
        if sources is not None and sources.hits:
            history = _with_system(history, sources.system_text())
        history, left_out, reserved = self._fit(history, params.max_tokens)
        if continue_message is None:
            message = self.chats.add_message(
                self.conversation_id, "assistant", "", MessageState.STREAMING, model=self.model_name()
            )
            if sources is not None and sources.hits:
                message = self.chats.set_sources(message.id, sources.to_json())
        else:
            message = self.chats.finish_message(continue_message.id, continue_message.content, MessageState.STREAMING)
        options = self.tool_options() if continue_message is None else None
        if options is not None:
            with self._lock:
                self._idle.clear()
            self.events.emit(ReplyStarted(self.conversation_id, message))
            self._start_tool_reply(message, history, params, options)
            return message
        with self._lock:
            self._idle.clear()
            self._active = _Active(None, message.id, message.content, last_flush=time.monotonic())
            self._active.reserved, self._active.left_out = reserved, left_out
            try:
                self._active.request_id = self.host.generate(history, params)
            except Exception as exc:
                self._finish(MessageState.FAILED, error=str(exc))
                raise
        self.events.emit(ReplyStarted(self.conversation_id, message))
        return message

    def _fit(self, history: list[ChatMessage], max_tokens: int) -> tuple[list[ChatMessage], int, int]:
        """Leave out the oldest messages (never the system prompt or the newest) until the prompt and room for
        the reply fit the context."""
        model = self.host.model
        assert model is not None
        reserved = min(max_tokens, model.context_length // 4)
        left_out = 0
        while True:
            used = self.host.count_tokens(history)
            self.usage = ContextUsage(used, model.context_length, reserved, left_out)
            first = 1 if history and history[0].role == "system" else 0
            if used + reserved <= model.context_length or len(history) - first <= 1:
                return history, left_out, reserved
            del history[first]
            left_out += 1

    def _on_engine_event(self, event: EngineEvent) -> None:
        with self._lock:
            active = self._active
            if active is None:
                return
            mine = getattr(event, "request_id", None) == active.request_id
            if isinstance(event, TokenChunk) and mine:
                active.text += event.text
                active.pending += event.text
                now = time.monotonic()
                if now - active.last_flush >= self.FLUSH_SECONDS:
                    self.chats.append_text(active.message_id, active.pending)
                    active.pending, active.last_flush = "", now
            elif isinstance(event, GenerationFinished) and mine:
                state = MessageState.STOPPED if event.stats.stop_reason == "cancelled" else MessageState.DONE
                used = event.stats.prompt_tokens + event.stats.completion_tokens
                model = self.host.model
                limit = model.context_length if model else (self.usage.limit if self.usage else 0)
                self.usage = ContextUsage(used, limit, active.reserved, active.left_out)
                self._finish(state, stats=event.stats)
                return
            elif isinstance(event, RequestFailed) and mine:
                if event.code == CancelledError.code:
                    self._finish(MessageState.STOPPED)
                else:
                    self._finish(MessageState.FAILED, error=event.message)
                return
            elif isinstance(event, EngineCrashed) and (mine or event.request_id is None):
                self._finish(MessageState.FAILED, error=event.message)
                return
            elif isinstance(event, EngineRecovering) and mine:
                active.text = active.pending = ""
                self.chats.set_content(active.message_id, active.prefix)
                restarted = ReplyRestarted(self.conversation_id, active.message_id, event.describe())
            else:
                return
        if isinstance(event, EngineRecovering):
            self.events.emit(restarted)
            return
        self.events.emit(ReplyDelta(self.conversation_id, active.message_id, event.text))

    def _tool_delta(self, message_id: int, text: str) -> None:
        self._tool_pending += text
        now = time.monotonic()
        if now - self._tool_flushed >= self.FLUSH_SECONDS:
            self.chats.append_text(message_id, self._tool_pending)
            self._tool_pending, self._tool_flushed = "", now
        self.events.emit(ReplyDelta(self.conversation_id, message_id, text))

    def _finish_tool_reply(
        self, message_id: int, text: str, state: MessageState, stats: GenerationStats | None, error: str
    ) -> None:
        message = self.chats.finish_message(message_id, text, state, stats=stats, error=error)
        if state == MessageState.FAILED:
            logger.warning("reply %d failed: %s", message_id, error)
        if stats is not None and self.usage is not None:
            used = stats.prompt_tokens + stats.completion_tokens
            self.usage = replace(self.usage, used=used)
        with self._lock:
            self._last = message
            self._idle.set()
        self.events.emit(ReplyFinished(self.conversation_id, message, self.usage))

    def _finish(self, state: MessageState, *, stats: object = None, error: str = "") -> None:
        active = self._active
        assert active is not None
        text = active.prefix + active.text
        message = self.chats.finish_message(active.message_id, text, state, stats=stats, error=error)  # type: ignore[arg-type]
        if state == MessageState.FAILED:
            logger.warning("reply %d failed: %s", active.message_id, error)
        self._active = None
        self._last = message
        self._idle.set()
        self.events.emit(ReplyFinished(self.conversation_id, message, self.usage))


def _with_system(history: list[ChatMessage], text: str) -> list[ChatMessage]:
    """``history`` with ``text`` added to its system prompt (or as one)."""
    if history and history[0].role == "system":
        return [ChatMessage("system", f"{history[0].content}\n\n{text}"), *history[1:]]
    return [ChatMessage("system", text), *history]
