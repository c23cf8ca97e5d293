"""A reply that may call tools, for ``ChatSession``: the tool loop (``core.tools.loop``) runs on its own thread, never
the caller's; each call is written to the store and shown as it goes (pending → running → done / denied / failed /
timed out); a pending call waits for ``answer()`` (allow once, always allow this tool, deny); Stop cancels the
generation and denies what is pending. A server that does not start is named in one line and the reply goes on
without it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.chat.store import Message, MessageState
from core.chat.tools import CallState, ChatTools, ChatToolStore, ConversationOptions, ToolCallEntry, call_state
from core.engine.protocol import ChatMessage, GenerationFinished, GenerationParams, GenerationStats, TokenChunk
from core.errors import CancelledError, HangarError
from core.tools.calling import ToolChoice
from core.tools.loop import Approval, ToolCallRecord, ToolSession, run_turn

if TYPE_CHECKING:
    from core.chat.store import ChatStore
    from core.engine.host import EngineHost
    from core.events import EventHook
    from core.tools.mcp import ToolSpec

logger = logging.getLogger(__name__)

_TAG = "<tool_call>"


@dataclass(frozen=True)
class ToolCallChanged:
    """A tool call's card appeared or changed (its state, result, time)."""

    conversation_id: int
    call: ToolCallEntry


@dataclass(frozen=True)
class ToolNotice:
    """One line about the tools of this reply: a server that did not start, the round limit."""

    conversation_id: int
    text: str


class _Visible:
    """The words of a reply that calls tools: each round's text up to its first ``<tool_call>`` (a tag's first
    characters are held back until it is clear they are not one)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self.done = ""
        self._round = ""
        self._shown = 0
        self._new_round = False

    def feed(self, chunk: str) -> None:
        if self._new_round:
            self._commit()
        self._round += chunk
        visible = self._round.split(_TAG, 1)[0]
        if _TAG not in self._round:
            for cut in range(min(len(_TAG) - 1, len(visible)), 0, -1):
                if visible.endswith(_TAG[:cut]):
                    visible = visible[:-cut]
                    break
        if len(visible) > self._shown:
            prefix = "\n\n" if self._shown == 0 and self.done.strip() else ""
            self._emit(prefix + visible[self._shown :])
            self._shown = len(visible)

    def round_over(self) -> None:
        self._new_round = True

    def _commit(self) -> None:
        words = self._round.split(_TAG, 1)[0].strip()
        if words:
            self.done = f"{self.done}\n\n{words}" if self.done.strip() else words
        self._round, self._shown, self._new_round = "", 0, False

    def text(self) -> str:
        self._commit()
        return self.done


class ToolReplies:
    """Mixed into ``ChatSession`` (which provides the attributes below)."""

    chats: ChatStore
    host: EngineHost
    conversation_id: int
    events: EventHook[[Any]]
    tools: ChatTools | None
    tool_store: ChatToolStore | None

    def _init_tools(self) -> None:
        self._tool_stop = False
        self._tool_request: int | None = None
        self._answers: dict[int, Approval] = {}
        self._answered = threading.Condition()
        self._tool_thread: threading.Thread | None = None

    def tool_options(self) -> ConversationOptions | None:
        """The conversation's tools when it uses any (and the app has tools at all)."""
        if self.tool_store is None or self.tools is None:
            return None
        options = self.tool_store.options(self.conversation_id)
        return options if options.servers else None

    def answer(self, call_id: int, decision: Approval) -> None:
        """The user's answer to a pending call (from the call's card)."""
        with self._answered:
            self._answers[call_id] = decision
            self._answered.notify_all()

    def _stop_tools(self) -> bool:
        """Stop a reply that runs tools; False when none does."""
        thread = self._tool_thread
        if thread is None or not thread.is_alive():
            return False
        with self._answered:
            self._tool_stop = True
            self._answered.notify_all()
        request_id = self._tool_request
        if request_id is not None:
            self.host.cancel(request_id)
        return True

    def _start_tool_reply(
        self, message: Message, history: list[ChatMessage], params: GenerationParams, options: ConversationOptions
    ) -> None:
        self._tool_stop = False
        self._answers.clear()
        self._tool_thread = threading.Thread(
            target=self._run_tools,
            args=(message, history, params, options),
            name=f"chat-tools-{self.conversation_id}",
            daemon=True,
        )
        self._tool_thread.start()

    # -- the tool thread ---------------------------------------------------------------------------------------------
    def _run_tools(
        self, message: Message, history: list[ChatMessage], params: GenerationParams, options: ConversationOptions
    ) -> None:
        assert self.tools is not None and self.tool_store is not None
        store = self.tool_store
        conversation = self.conversation_id
        visible = _Visible(lambda text: self._tool_delta(message.id, text))
        current: list[ToolCallEntry] = []  # the call being asked about or run
        denied: list[bool] = [False]

        def changed(entry: ToolCallEntry) -> None:
            self.events.emit(ToolCallChanged(conversation, entry))

        def approve(server: str, tool: str, arguments: Any) -> Approval:
            entry = store.add_call(message.id, server, tool, arguments, CallState.PENDING)
            current[:] = [entry]
            changed(entry)
            with self._answered:
                while entry.id not in self._answers and not self._tool_stop:
                    self._answered.wait(0.5)
                decision = self._answers.pop(entry.id, Approval.DENY)
            if decision == Approval.ALWAYS:
                store.allow_always(f"{server}__{tool}")
            denied[0] = decision == Approval.DENY
            return decision

        def on_run(server: str, tool: str, arguments: Any) -> None:
            if current:
                entry = store.update_call(current[0].id, CallState.RUNNING)
            else:
                entry = store.add_call(message.id, server, tool, arguments, CallState.RUNNING)
            current[:] = [entry]
            changed(entry)

        def on_call(record: ToolCallRecord) -> None:
            visible.round_over()
            if not current:
                entry = store.add_call(message.id, record.server, record.tool, record.arguments, CallState.RUNNING)
                current.append(entry)
            state = call_state(record.approved, record.is_error, record.result, denied[0])
            seconds = record.seconds if record.approved else None
            changed(store.update_call(current[0].id, state, result=record.result, seconds=seconds))
            current.clear()
            denied[0] = False

        state, stats, error = MessageState.DONE, None, ""
        try:
            mcp = self.tools.tools()
            specs: list[ToolSpec] = []
            for server in options.servers:
                if server not in mcp.configs:
                    self.events.emit(ToolNotice(conversation, f'The MCP server "{server}" is no longer in mcp.json.'))
                    continue
                try:
                    specs.extend(mcp.tools_of(server))
                except HangarError as exc:  # one line in place; the reply goes on without that server
                    self.events.emit(ToolNotice(conversation, str(exc)))
            session = ToolSession(mcp, specs, approve, always=store.always_allowed(), on_run=on_run)
            names = set(session.catalogue())
            choice, name = ToolChoice.AUTO, None
            if options.tool_choice == "required" and names:
                choice = ToolChoice.REQUIRED
            elif options.tool_choice in names:
                choice, name = ToolChoice.NAMED, options.tool_choice
            turn = run_turn(
                self.host,
                history,
                params,
                session,
                choice=choice,
                name=name,
                on_call=on_call,
                on_chunk=visible.feed,
                generate=self._generate_stoppable,
            )
            stats = turn.stats
            if turn.stopped_at_limit:
                self.events.emit(ToolNotice(conversation, f"Stopped after {turn.rounds} rounds of tool calls."))
        except CancelledError:
            state = MessageState.STOPPED
        except Exception as exc:  # the engine failed or crashed: the partial reply and the reason are kept
            state, error = MessageState.FAILED, str(exc) or type(exc).__name__
        finally:
            store_calls = store.calls(conversation).get(message.id, [])
            for entry in store_calls:
                if entry.state in (CallState.PENDING, CallState.RUNNING):
                    changed(store.update_call(entry.id, CallState.DENIED, result="Stopped before it ran."))
        self._finish_tool_reply(message.id, visible.text(), state, stats, error)

    def _generate_stoppable(
        self, messages: Sequence[ChatMessage], params: GenerationParams, on_chunk: Callable[[str], None] | None
    ) -> GenerationStats:
        """One round of generation that Stop can cancel."""
        if self._tool_stop:
            raise CancelledError("Stopped.")
        lock = threading.Lock()
        mine: list[int] = []
        early: list[TokenChunk] = []

        def forward(event: object) -> None:
            if on_chunk is None or not isinstance(event, TokenChunk):
                return
            with lock:
                if not mine:
                    early.append(event)
                    return
            if event.request_id == mine[0]:
                on_chunk(event.text)

        disconnect = self.host.events.connect(forward)
        try:
            request_id = self.host.generate(messages, params)
            with lock:
                mine.append(request_id)
                for chunk in early:
                    if chunk.request_id == request_id and on_chunk is not None:
                        on_chunk(chunk.text)
            self._tool_request = request_id
            if self._tool_stop:
                self.host.cancel(request_id)
            event = self.host.wait(request_id, 3600)
        finally:
            disconnect()
            self._tool_request = None
        assert isinstance(event, GenerationFinished)
        return event.stats

    def _tool_delta(self, message_id: int, text: str) -> None:
        raise NotImplementedError

    def _finish_tool_reply(
        self, message_id: int, text: str, state: MessageState, stats: GenerationStats | None, error: str
    ) -> None:
        raise NotImplementedError
