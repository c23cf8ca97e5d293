"""Replies that call tools, in the window's chat session, on a real llama.cpp engine and the real MCP test server:
the loop runs on its own thread; a call waits for the user's answer (allow once, always — remembered for the app —,
deny — the model is told); calls and results persist with the reply; a server that does not start is one line and
the reply goes on; Stop while a call waits ends the reply."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.worker import serve
from core.chat.session import ChatSession, ReplyFinished
from core.chat.session_tools import ToolCallChanged, ToolNotice
from core.chat.store import ChatSettings, ChatStore, MessageState
from core.chat.tools import CallState, ChatTools, ChatToolStore, ConversationOptions
from core.engine.host import EngineHost
from core.engine.protocol import LoadOptions, ModelSpec
from core.errors import UsageError
from core.store import Store
from core.tools.loop import Approval

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
FAST = ChatSettings(temperature=0.8, seed=7, max_tokens=16)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def host(tiny_gguf: Path) -> Iterator[EngineHost]:
    engine_host = EngineHost(serve, name="test-chat-tools")
    engine_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=4096)))
    yield engine_host
    engine_host.shutdown()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[ChatStore, ChatToolStore, ChatTools]]:
    store = Store(tmp_path / "chat.sqlite3")
    tools = ChatTools(tmp_path / "mcp.json")
    config = {
        "mcpServers": {
            "kit": {"command": sys.executable, "args": [str(SERVER)]},
            "noise": {"command": sys.executable, "args": ["-c", "print('this is not MCP')"], "startup_timeout": 5},
        }
    }
    tools.save(json.dumps(config, indent=2))
    yield ChatStore(store), ChatToolStore(store), tools
    tools.close()
    store.close()


def _session(parts, host: EngineHost, servers: tuple[str, ...], choice: str = "add") -> tuple[ChatSession, list]:  # type: ignore[no-untyped-def]
    chats, tool_store, tools = parts
    conversation = chats.create(model="tiny", engine="llama", settings=FAST)
    tool_store.set_options(conversation.id, ConversationOptions(servers, choice))
    session = ChatSession(chats, host, conversation.id, tools=tools, tool_store=tool_store)
    events: list = []
    session.events.connect(events.append)
    return session, events


def _answering(session: ChatSession, events: list, decision: Approval) -> None:
    def on_event(event: object) -> None:
        if isinstance(event, ToolCallChanged) and event.call.state == CallState.PENDING:
            threading.Thread(target=session.answer, args=(event.call.id, decision)).start()

    session.events.connect(on_event)


def test_an_allowed_call_runs_and_the_model_answers(parts, host: EngineHost) -> None:  # type: ignore[no-untyped-def]
    session, events = _session(parts, host, ("kit",))
    _answering(session, events, Approval.ONCE)
    message = session.send("What is 2 + 40?")
    assert session.busy  # the loop runs on its own thread: send() returned at once
    reply = session.wait(120)
    assert reply.id == message.id and reply.state == MessageState.DONE, reply.error
    assert reply.completion_tokens  # the final round answered in words
    states = [e.call.state for e in events if isinstance(e, ToolCallChanged)]
    assert states == [CallState.PENDING, CallState.RUNNING, CallState.DONE]
    (call,) = parts[1].calls(session.conversation_id)[reply.id]
    assert call.server == "kit" and call.tool == "add" and call.state == CallState.DONE
    assert call.result == str(call.arguments["a"] + call.arguments["b"]) and call.seconds is not None
    assert isinstance(events[-1], ReplyFinished)


def test_deny_tells_the_model_and_always_is_remembered_for_the_app(parts, host: EngineHost) -> None:  # type: ignore[no-untyped-def]
    session, events = _session(parts, host, ("kit",))
    _answering(session, events, Approval.DENY)
    reply = (session.send("2 + 40?"), session.wait(120))[1]
    (call,) = parts[1].calls(session.conversation_id)[reply.id]
    assert call.state == CallState.DENIED and call.result == "The user denied this call." and reply.state == "done"

    session, events = _session(parts, host, ("kit",))
    _answering(session, events, Approval.ALWAYS)
    session.send("2 + 40?")
    session.wait(120)
    assert parts[1].always_allowed() == {"kit__add"}
    # a new conversation: the tool is not asked about again
    session, events = _session(parts, host, ("kit",))
    reply = (session.send("2 + 40?"), session.wait(120))[1]
    states = [e.call.state for e in events if isinstance(e, ToolCallChanged)]
    assert CallState.PENDING not in states and states[-1] == CallState.DONE


def test_a_server_that_speaks_garbage_is_one_line_and_the_reply_goes_on(parts, host: EngineHost) -> None:  # type: ignore[no-untyped-def]
    session, events = _session(parts, host, ("noise",), choice="auto")
    reply = (session.send("hello"), session.wait(120))[1]
    assert reply.state == MessageState.DONE
    (notice,) = [e for e in events if isinstance(e, ToolNotice)]
    assert "noise" in notice.text and "\n" not in notice.text


def test_stop_while_a_call_waits_ends_the_reply(parts, host: EngineHost) -> None:  # type: ignore[no-untyped-def]
    session, _events = _session(parts, host, ("kit",))
    pending = threading.Event()
    session.events.connect(
        lambda e: pending.set() if isinstance(e, ToolCallChanged) and e.call.state == "pending" else None
    )
    session.send("2 + 40?")
    assert pending.wait(60)
    with pytest.raises(UsageError):
        session.send("again")  # one reply at a time
    session.stop()
    reply = session.wait(60)
    assert reply.state == MessageState.STOPPED
    (call,) = parts[1].calls(session.conversation_id)[reply.id]
    assert call.state == CallState.DENIED


def test_bad_mcp_json_is_refused_in_one_line(tmp_path: Path) -> None:
    tools = ChatTools(tmp_path / "mcp.json")
    with pytest.raises(UsageError, match="Not valid JSON"):
        tools.save("{nope")
    with pytest.raises(UsageError, match="mcpServers"):
        tools.save('{"servers": {}}')
    with pytest.raises(UsageError, match='server "x"'):
        tools.save('{"mcpServers": {"x": {"args": []}}}')
    assert not (tmp_path / "mcp.json").exists() and tools.servers() == []
    assert tools.save('{"mcpServers": {"y": {"url": "http://127.0.0.1:9/mcp"}}}')[0].name == "y"
    assert tools.servers() == ["y"]
